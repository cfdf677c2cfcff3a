//! Every label value the server's metrics use, as enums: a typo is a compile error, and the
//! set of series a family can have is known (so a version's series can all be removed).

/// Request outcomes, as the `outcome` label of `vane_requests_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    BadRequest,
    TooLarge,
    Rejected,
    Timeout,
    Error,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::BadRequest,
        Outcome::TooLarge,
        Outcome::Rejected,
        Outcome::Timeout,
        Outcome::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::BadRequest => "bad_request",
            Outcome::TooLarge => "too_large",
            Outcome::Rejected => "rejected",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// The `outcome` of a shadow copy (`vane_shadow_requests_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOutcome {
    Success,
    /// The shadow's queue refused the copy.
    Rejected,
    Error,
}

impl ShadowOutcome {
    pub const ALL: [ShadowOutcome; 3] = [
        ShadowOutcome::Success,
        ShadowOutcome::Rejected,
        ShadowOutcome::Error,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ShadowOutcome::Success => "success",
            ShadowOutcome::Rejected => "rejected",
            ShadowOutcome::Error => "error",
        }
    }
}

/// Why sampled rows did not reach the monitor (`vane_samples_dropped_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// The ring or its row budget was full.
    QueueFull,
    /// No connection to the monitor.
    MonitorDown,
    /// Writing to the monitor failed.
    SendFailed,
}

impl DropReason {
    pub const ALL: [DropReason; 3] = [
        DropReason::QueueFull,
        DropReason::MonitorDown,
        DropReason::SendFailed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::MonitorDown => "monitor_down",
            DropReason::SendFailed => "send_failed",
        }
    }
}

/// The part a loaded version plays in a model's traffic (`vane_model_role{role}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Champion,
    Canary,
    Shadow,
}

impl Role {
    pub fn label(self) -> &'static str {
        match self {
            Role::Champion => "champion",
            Role::Canary => "canary",
            Role::Shadow => "shadow",
        }
    }
}

/// Why the registry or a version load failed (`vane_registry_errors_total{kind}`,
/// `vane_model_load_failures_total{reason}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    NotFound,
    Digest,
    Unreachable,
    Malformed,
    Fetch,
    /// The new signature would break the route's clients.
    Incompatible,
    /// The backend could not load the graph.
    Load,
    /// The loaded graph failed its warm-up run.
    Warmup,
}

impl FailureKind {
    pub fn label(self) -> &'static str {
        match self {
            FailureKind::NotFound => "not_found",
            FailureKind::Digest => "digest",
            FailureKind::Unreachable => "unreachable",
            FailureKind::Malformed => "malformed",
            FailureKind::Fetch => "fetch",
            FailureKind::Incompatible => "incompatible",
            FailureKind::Load => "load",
            FailureKind::Warmup => "warmup",
        }
    }
}
