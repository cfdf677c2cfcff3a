//! The live progress line on stderr: an indicatif line redrawn in place when stderr is a
//! terminal, one plain line per second otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::ProgressMode;
use crate::engine::Tick;
use crate::verdict::fmt_us;

/// Where progress goes.
pub enum Progress {
    Bar(ProgressBar),
    Lines,
    Off,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let tty = std::io::stderr().is_terminal();
        match mode {
            ProgressMode::Off => Progress::Off,
            ProgressMode::Lines => Progress::Lines,
            ProgressMode::Auto if !tty => Progress::Lines,
            ProgressMode::Auto | ProgressMode::Bar => {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                if let Ok(style) = ProgressStyle::with_template("{msg}") {
                    bar.set_style(style);
                }
                Progress::Bar(bar)
            }
        }
    }

    /// Shows one second's figures.
    pub fn tick(&self, t: &Tick<'_>, labels: &[String]) {
        if matches!(self, Progress::Off) {
            return;
        }
        let line = line(t, labels);
        match self {
            Progress::Bar(b) => b.set_message(line),
            Progress::Lines => eprintln!("{line}"),
            Progress::Off => {}
        }
    }

    /// Prints a note (e.g. a sweep step's result) without breaking the live line.
    pub fn note(&self, msg: &str) {
        match self {
            Progress::Bar(b) => b.println(msg),
            Progress::Lines => eprintln!("{msg}"),
            Progress::Off => {}
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(b) = self {
            b.finish_and_clear();
        }
    }
}

/// `[  3/10s] 1998/s (offered 2000/s)  p50 850µs  p99 2.10ms  errors 0 | canary p99 …`
pub fn line(t: &Tick<'_>, labels: &[String]) -> String {
    let r = t.row;
    let mut s = format!(
        "[{:>3}/{}s] {:>7}/s",
        r.second + 1,
        t.total_seconds,
        r.all.completed
    );
    if let Some(o) = r.offered {
        s.push_str(&format!(" (offered {o:.0}/s)"));
    }
    s.push_str(&format!(
        "  p50 {}  p99 {}  errors {}",
        fmt_us(r.all.p50_us as f64),
        fmt_us(r.all.p99_us as f64),
        r.all.errors
    ));
    if r.arms.len() > 1 {
        for (a, l) in r.arms.iter().zip(labels) {
            s.push_str(&format!(
                " | {l} p99 {} err {}",
                fmt_us(a.p99_us as f64),
                a.errors
            ));
        }
    }
    s
}
