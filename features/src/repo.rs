//! The feature repository: a TOML file of entities, feature views and feature services.
//!
//! ```toml
//! [[entities]]
//! name = "applicant"
//! join_key = "applicant_id"
//! dtype = "INT64"
//!
//! [[feature_views]]
//! name = "credit_activity"
//! entity = "applicant"
//! source = "data/credit_activity.parquet"       # relative to this file
//! timestamp_field = "event_timestamp"
//! created_timestamp_field = "created_timestamp"  # optional: breaks ties between equal timestamps
//! ttl = "90d"                                    # optional: s, m, h, d or w; omitted = no limit
//! fields = [
//!   { name = "debt_to_income", dtype = "FP64" },
//!   { name = "delinquencies_2y", dtype = "INT64" },
//! ]
//!
//! [[entities]]
//! name = "merchant"
//! join_key = "merchant_code"
//! dtype = "STRING"                               # entity keys: INT64 (default) or STRING
//!
//! [[feature_views]]
//! name = "applicant_merchant"
//! entities = ["applicant", "merchant"]           # a composite key: one row per pair
//! source = "data/applicant_merchant.parquet"
//! timestamp_field = "event_timestamp"
//! fields = [{ name = "purchases_30d", dtype = "INT64" }]
//!
//! [[feature_services]]
//! name = "credit_risk_v1"
//! features = ["credit_activity:debt_to_income", "credit_activity:delinquencies_2y"]
//! request_features = ["loan_amount"]             # supplied by the caller at request time
//! ```
//!
//! [`FeatureRepo::load`] parses and validates the whole file once; every error names the file
//! and the entity, view, service or field at fault.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use vane_online::{StoredField, ViewSchema};

/// A feature repository that failed to load.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error("reading feature repository {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A syntax error or a definition that breaks a rule; `message` names what is at fault.
    #[error("feature repository {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// Type of an entity key or a feature field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 64-bit float (Arrow `Float64`).
    Fp64,
    /// 64-bit signed integer (Arrow `Int64`).
    Int64,
    /// UTF-8 string (Arrow `Utf8`): a categorical feature.
    String,
}

impl Dtype {
    /// The spelling used in the TOML file.
    pub fn as_str(self) -> &'static str {
        match self {
            Dtype::Fp64 => "FP64",
            Dtype::Int64 => "INT64",
            Dtype::String => "STRING",
        }
    }

    /// The [`StoredField::kind`] of a field of this type: `NUMERIC` or `STRING`.
    pub fn kind(self) -> &'static str {
        match self {
            Dtype::Fp64 | Dtype::Int64 => "NUMERIC",
            Dtype::String => "STRING",
        }
    }
}

impl FromStr for Dtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "FP64" => Ok(Dtype::Fp64),
            "INT64" => Ok(Dtype::Int64),
            "STRING" => Ok(Dtype::String),
            other => Err(format!(
                "unknown dtype {other:?} (expected FP64, INT64 or STRING)"
            )),
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An entity: what feature rows are about, identified by a join key (INT64 or STRING).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    pub name: String,
    /// Column holding the entity id, in feature sources and entity data frames.
    pub join_key: String,
    /// [`Dtype::Int64`] or [`Dtype::String`].
    pub dtype: Dtype,
}

/// One join key of a feature view: a column of its source and of entity data frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinKey {
    pub name: String,
    /// [`Dtype::Int64`] or [`Dtype::String`].
    pub dtype: Dtype,
}

impl JoinKey {
    /// The online store's kind for this key.
    pub fn kind(&self) -> vane_online::KeyKind {
        match self.dtype {
            Dtype::String => vane_online::KeyKind::String,
            Dtype::Int64 | Dtype::Fp64 => vane_online::KeyKind::Int64,
        }
    }
}

/// One typed field of a feature view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub dtype: Dtype,
}

/// A feature view: typed feature columns of one entity, from one Parquet source, each row valid
/// from its event timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureView {
    pub name: String,
    /// The entities' names: one, or several for a composite key.
    pub entities: Vec<String>,
    /// The entities' join keys, in the same order: a row's entity key.
    pub join_keys: Vec<JoinKey>,
    /// The source as written in the file; [`FeatureRepo::source_path`] resolves it.
    pub source: PathBuf,
    pub timestamp_field: String,
    pub created_timestamp_field: Option<String>,
    /// Maximum age of a row (point-in-time joins and online reads); `None`: no limit.
    pub ttl_s: Option<u64>,
    pub fields: Vec<Field>,
}

impl FeatureView {
    /// Position and definition of a field.
    pub fn field(&self, name: &str) -> Option<(usize, &Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.name == name)
    }

    /// The TTL in microseconds (saturating).
    pub fn ttl_us(&self) -> Option<i64> {
        self.ttl_s.map(vane_online::ttl_us)
    }

    /// The field layout written to the online store beside the rows.
    pub fn stored_fields(&self) -> Vec<StoredField> {
        self.fields
            .iter()
            .map(|f| StoredField::new(&f.name, f.dtype.kind()))
            .collect()
    }

    /// The keys and fields written to the online store beside the rows.
    pub fn stored_schema(&self) -> ViewSchema {
        ViewSchema::new(
            self.join_keys
                .iter()
                .map(|k| StoredField::new(&k.name, k.kind().as_str()))
                .collect(),
            self.stored_fields(),
        )
    }

    /// The join keys' names, in key order.
    pub fn join_key_names(&self) -> Vec<&str> {
        self.join_keys.iter().map(|k| k.name.as_str()).collect()
    }
}

/// `view:feature`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeatureRef {
    pub view: String,
    pub feature: String,
}

impl FeatureRef {
    pub fn new(view: impl Into<String>, feature: impl Into<String>) -> Self {
        Self {
            view: view.into(),
            feature: feature.into(),
        }
    }
}

impl FromStr for FeatureRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((v, f)) if !v.is_empty() && !f.is_empty() && !f.contains(':') => {
                Ok(FeatureRef::new(v, f))
            }
            _ => Err(format!(
                "feature reference {s:?} is not of the form \"view:feature\""
            )),
        }
    }
}

impl fmt::Display for FeatureRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.view, self.feature)
    }
}

/// A feature service: the features one model reads (output columns named by feature), plus
/// the features its callers supply at request time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureService {
    pub name: String,
    pub features: Vec<FeatureRef>,
    pub request_features: Vec<String>,
}

/// A validated feature repository.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRepo {
    /// The TOML file it was read from.
    pub path: PathBuf,
    pub entities: Vec<Entity>,
    pub feature_views: Vec<FeatureView>,
    pub feature_services: Vec<FeatureService>,
}

// ---------------------------------------------------------------------------------------------
// The file as written

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRepo {
    #[serde(default)]
    entities: Vec<RawEntity>,
    #[serde(default)]
    feature_views: Vec<RawView>,
    #[serde(default)]
    feature_services: Vec<RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntity {
    name: String,
    join_key: String,
    #[serde(default = "int64")]
    dtype: String,
}

fn int64() -> String {
    "INT64".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawView {
    name: String,
    entity: Option<String>,
    entities: Option<Vec<String>>,
    source: String,
    timestamp_field: String,
    created_timestamp_field: Option<String>,
    ttl: Option<String>,
    fields: Vec<RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawField {
    name: String,
    dtype: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    features: Vec<String>,
    #[serde(default)]
    request_features: Vec<String>,
}

/// Parses a TTL: a positive integer followed by `s`, `m`, `h`, `d` or `w`. Returns seconds.
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("ttl {s:?} has no unit (use s, m, h, d or w, e.g. \"90d\")"))?;
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("ttl {s:?} must start with a whole number (e.g. \"90d\")"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => {
            return Err(format!(
                "ttl {s:?} has unknown unit {unit:?} (use s, m, h, d or w)"
            ));
        }
    };
    if n == 0 {
        return Err(format!(
            "ttl {s:?} must be positive (leave ttl out for no limit)"
        ));
    }
    n.checked_mul(mult)
        .ok_or_else(|| format!("ttl {s:?} is too large"))
}

/// Names of entities, views, services and fields: a letter or `_`, then letters, digits, `_`
/// or `-` (no `:`, which separates view and feature; safe in Redis keys and column names).
fn check_name(what: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{what} name {name:?} is invalid (use a letter or '_' followed by letters, digits, '_' or '-')"
        ))
    }
}

impl FeatureRepo {
    /// Reads and validates the repository at `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, RepoError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| RepoError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text` as if read from `path` (sources resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, RepoError> {
        let invalid = |message: String| RepoError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawRepo = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        Self::validate(raw, path).map_err(invalid)
    }

    fn validate(raw: RawRepo, path: &Path) -> Result<Self, String> {
        let mut entities: Vec<Entity> = Vec::new();
        for e in raw.entities {
            let at = format!("entity {:?}", e.name);
            check_name("entity", &e.name)?;
            check_name(&format!("{at}: join_key"), &e.join_key)?;
            let dtype: Dtype = e.dtype.parse().map_err(|m| format!("{at}: {m}"))?;
            if dtype == Dtype::Fp64 {
                return Err(format!(
                    "{at}: join key dtype must be INT64 or STRING, not {dtype}"
                ));
            }
            if entities.iter().any(|x| x.name == e.name) {
                return Err(format!("{at} is defined twice"));
            }
            if let Some(x) = entities
                .iter()
                .find(|x| x.join_key == e.join_key && x.dtype != dtype)
            {
                return Err(format!(
                    "{at}: join key {:?} is {dtype} here but {} in entity {:?}; one column has one type",
                    e.join_key, x.dtype, x.name
                ));
            }
            entities.push(Entity {
                name: e.name,
                join_key: e.join_key,
                dtype,
            });
        }

        let mut views: Vec<FeatureView> = Vec::new();
        for v in raw.feature_views {
            let at = format!("feature view {:?}", v.name);
            check_name("feature view", &v.name)?;
            if views.iter().any(|x| x.name == v.name) {
                return Err(format!("{at} is defined twice"));
            }
            let names = match (v.entity, v.entities) {
                (Some(e), None) => vec![e],
                (None, Some(es)) if !es.is_empty() => es,
                (None, _) => {
                    return Err(format!(
                        "{at}: give its entity (entity = \"…\") or entities = [\"…\", …]"
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: give entity or entities, not both"));
                }
            };
            let mut join_keys: Vec<JoinKey> = Vec::with_capacity(names.len());
            for name in &names {
                let entity = entities.iter().find(|e| e.name == *name).ok_or_else(|| {
                    let known: Vec<&str> = entities.iter().map(|e| e.name.as_str()).collect();
                    format!("{at}: unknown entity {name:?} (entities: {known:?})")
                })?;
                if join_keys.iter().any(|k| k.name == entity.join_key) {
                    return Err(format!(
                        "{at}: join key {:?} is listed twice (entities {names:?})",
                        entity.join_key
                    ));
                }
                join_keys.push(JoinKey {
                    name: entity.join_key.clone(),
                    dtype: entity.dtype,
                });
            }
            if v.source.trim().is_empty() {
                return Err(format!("{at}: source is empty"));
            }
            check_name(&format!("{at}: timestamp_field"), &v.timestamp_field)?;
            if let Some(c) = &v.created_timestamp_field {
                check_name(&format!("{at}: created_timestamp_field"), c)?;
                if *c == v.timestamp_field {
                    return Err(format!(
                        "{at}: created_timestamp_field and timestamp_field are both {c:?}"
                    ));
                }
            }
            let ttl_s = v
                .ttl
                .as_deref()
                .map(parse_ttl)
                .transpose()
                .map_err(|m| format!("{at}: {m}"))?;
            if v.fields.is_empty() {
                return Err(format!("{at} has no fields"));
            }
            let reserved: Vec<(&str, &str)> = join_keys
                .iter()
                .map(|k| (k.name.as_str(), "a join key"))
                .chain([(v.timestamp_field.as_str(), "the timestamp field")])
                .chain(
                    v.created_timestamp_field
                        .as_deref()
                        .map(|c| (c, "the created timestamp field")),
                )
                .collect();
            let mut fields: Vec<Field> = Vec::new();
            for f in v.fields {
                let fat = format!("{at}: field {:?}", f.name);
                check_name("field", &f.name).map_err(|m| format!("{at}: {m}"))?;
                let dtype: Dtype = f.dtype.parse().map_err(|m| format!("{fat}: {m}"))?;
                if let Some((_, what)) = reserved.iter().find(|(n, _)| *n == f.name) {
                    return Err(format!("{fat} has the name of {what}"));
                }
                if fields.iter().any(|x| x.name == f.name) {
                    return Err(format!("{fat} is defined twice"));
                }
                fields.push(Field {
                    name: f.name,
                    dtype,
                });
            }
            views.push(FeatureView {
                name: v.name,
                entities: names,
                join_keys,
                source: PathBuf::from(v.source),
                timestamp_field: v.timestamp_field,
                created_timestamp_field: v.created_timestamp_field,
                ttl_s,
                fields,
            });
        }

        let mut services: Vec<FeatureService> = Vec::new();
        for s in raw.feature_services {
            let at = format!("feature service {:?}", s.name);
            check_name("feature service", &s.name)?;
            if services.iter().any(|x| x.name == s.name) {
                return Err(format!("{at} is defined twice"));
            }
            if s.features.is_empty() {
                return Err(format!("{at} lists no features"));
            }
            let features = resolve_refs(&views, &s.features).map_err(|m| format!("{at}: {m}"))?;
            let mut seen: HashSet<&str> = features.iter().map(|r| r.feature.as_str()).collect();
            for r in &s.request_features {
                check_name("request feature", r).map_err(|m| format!("{at}: {m}"))?;
                if !seen.insert(r) {
                    return Err(format!(
                        "{at}: request feature {r:?} is listed twice or is also a view feature"
                    ));
                }
            }
            services.push(FeatureService {
                name: s.name,
                features,
                request_features: s.request_features,
            });
        }

        Ok(FeatureRepo {
            path: path.to_path_buf(),
            entities,
            feature_views: views,
            feature_services: services,
        })
    }

    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.iter().find(|e| e.name == name)
    }

    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.feature_views.iter().find(|v| v.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&FeatureService> {
        self.feature_services.iter().find(|s| s.name == name)
    }

    /// The folder sources resolve against (the TOML file's folder).
    pub fn base_dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The view's source, resolved against the repository's folder.
    pub fn source_path(&self, view: &FeatureView) -> PathBuf {
        self.base_dir().join(&view.source)
    }

    /// Parses and checks `view:feature` references (output columns are named by feature, so
    /// one feature name may appear only once).
    pub fn parse_refs<S: AsRef<str>>(&self, refs: &[S]) -> Result<Vec<FeatureRef>, RepoError> {
        resolve_refs(&self.feature_views, refs).map_err(|message| RepoError::Invalid {
            path: self.path.clone(),
            message,
        })
    }

    /// The join keys an entity data frame (or an entity-keyed request) must give to read
    /// `features`: the union of their views' keys, in order of first appearance.
    pub fn join_keys(&self, features: &[FeatureRef]) -> Vec<JoinKey> {
        let mut out: Vec<JoinKey> = Vec::new();
        for r in features {
            for k in self.view(&r.view).map_or(&[][..], |v| &v.join_keys) {
                if !out.iter().any(|x| x.name == k.name) {
                    out.push(k.clone());
                }
            }
        }
        out
    }

    /// The features of a service, or an error naming the known services.
    pub fn service_features(&self, name: &str) -> Result<&[FeatureRef], RepoError> {
        self.service(name)
            .map(|s| s.features.as_slice())
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .feature_services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect();
                RepoError::Invalid {
                    path: self.path.clone(),
                    message: format!("unknown feature service {name:?} (services: {known:?})"),
                }
            })
    }
}

fn resolve_refs<S: AsRef<str>>(
    views: &[FeatureView],
    refs: &[S],
) -> Result<Vec<FeatureRef>, String> {
    let mut out: Vec<FeatureRef> = Vec::with_capacity(refs.len());
    let mut names: HashMap<String, String> = HashMap::new();
    for r in refs {
        let r: FeatureRef = r.as_ref().parse()?;
        let view = views.iter().find(|v| v.name == r.view).ok_or_else(|| {
            format!(
                "feature {:?}: unknown feature view {:?}",
                r.to_string(),
                r.view
            )
        })?;
        if view.field(&r.feature).is_none() {
            let known: Vec<&str> = view.fields.iter().map(|f| f.name.as_str()).collect();
            return Err(format!(
                "feature {:?}: feature view {:?} has no field {:?} (fields: {known:?})",
                r.to_string(),
                r.view,
                r.feature
            ));
        }
        if let Some(prev) = names.insert(r.feature.clone(), r.view.clone()) {
            return Err(if prev == r.view {
                format!("feature {:?} is listed twice", r.to_string())
            } else {
                format!(
                    "feature {:?} comes from both view {prev:?} and view {:?}; output columns are named by feature, so pick one",
                    r.feature, r.view
                )
            });
        }
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[entities]]
name = "applicant"
join_key = "applicant_id"
dtype = "INT64"

[[feature_views]]
name = "profile"
entity = "applicant"
source = "data/profile.parquet"
timestamp_field = "event_timestamp"
created_timestamp_field = "created_timestamp"
ttl = "400d"
fields = [
  { name = "annual_income", dtype = "FP64" },
  { name = "fico_score", dtype = "INT64" },
  { name = "home_ownership", dtype = "STRING" },
]

[[feature_views]]
name = "activity"
entity = "applicant"
source = "/abs/activity.parquet"
timestamp_field = "ts"
fields = [{ name = "debt_to_income", dtype = "FP64" }]

[[feature_services]]
name = "svc"
features = ["profile:annual_income", "activity:debt_to_income"]
request_features = ["loan_amount"]
"#;

    fn parse(text: &str) -> Result<FeatureRepo, RepoError> {
        FeatureRepo::parse(text, Path::new("/repo/features.toml"))
    }

    /// Parses GOOD with one substring replaced and returns the error message.
    fn error_with(from: &str, to: &str) -> String {
        assert!(GOOD.contains(from), "test bug: {from:?} not in GOOD");
        let text = GOOD.replacen(from, to, 1);
        let e = parse(&text).expect_err("expected an error");
        let msg = e.to_string();
        assert!(msg.contains("/repo/features.toml"), "names the file: {msg}");
        msg
    }

    fn assert_has(msg: &str, parts: &[&str]) {
        for p in parts {
            assert!(msg.contains(p), "{msg:?} should contain {p:?}");
        }
    }

    #[test]
    fn parses_a_good_repository() {
        let r = parse(GOOD).unwrap();
        assert_eq!(r.entities.len(), 1);
        let p = r.view("profile").unwrap();
        assert_eq!(p.join_key_names(), ["applicant_id"]);
        assert_eq!(p.join_keys[0].dtype, Dtype::Int64);
        assert_eq!(p.entities, ["applicant"]);
        assert_eq!(p.ttl_s, Some(400 * 86_400));
        assert_eq!(p.ttl_us(), Some(400 * 86_400 * 1_000_000));
        assert_eq!(
            p.created_timestamp_field.as_deref(),
            Some("created_timestamp")
        );
        assert_eq!(p.field("fico_score").unwrap().0, 1);
        assert_eq!(p.fields[2].dtype, Dtype::String);
        assert_eq!(
            r.source_path(p),
            PathBuf::from("/repo/data/profile.parquet")
        );
        let a = r.view("activity").unwrap();
        assert_eq!(a.ttl_s, None);
        assert_eq!(r.source_path(a), PathBuf::from("/abs/activity.parquet"));
        let s = r.service("svc").unwrap();
        assert_eq!(
            s.features,
            vec![
                FeatureRef::new("profile", "annual_income"),
                FeatureRef::new("activity", "debt_to_income")
            ]
        );
        assert_eq!(s.request_features, vec!["loan_amount"]);
        assert_eq!(r.service_features("svc").unwrap().len(), 2);
        assert_eq!(
            p.stored_fields()[2],
            StoredField {
                name: "home_ownership".into(),
                kind: "STRING".into()
            }
        );
    }

    #[test]
    fn ttl_units() {
        assert_eq!(parse_ttl("3600s"), Ok(3600));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("12h"), Ok(43_200));
        assert_eq!(parse_ttl("90d"), Ok(90 * 86_400));
        assert_eq!(parse_ttl("2w"), Ok(14 * 86_400));
        for bad in [
            "",
            "90",
            "d",
            "-1d",
            "1.5d",
            "90 days",
            "0s",
            "99999999999999999999d",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn io_error_names_the_file() {
        let e = FeatureRepo::load("/nonexistent/features.toml").unwrap_err();
        assert!(matches!(e, RepoError::Io { .. }));
        assert_has(&e.to_string(), &["/nonexistent/features.toml"]);
    }

    #[test]
    fn toml_syntax_error() {
        let msg = error_with("ttl = \"400d\"", "ttl = 400d\"");
        assert_has(&msg, &["line"]);
    }

    #[test]
    fn unknown_key() {
        let msg = error_with("ttl = \"400d\"", "ttl = \"400d\"\nttl_days = 4");
        assert_has(&msg, &["ttl_days"]);
    }

    #[test]
    fn missing_key() {
        let msg = error_with("timestamp_field = \"ts\"\n", "");
        assert_has(&msg, &["timestamp_field"]);
    }

    #[test]
    fn unknown_entity() {
        let msg = error_with(
            "entity = \"applicant\"\nsource = \"/abs",
            "entity = \"loan\"\nsource = \"/abs",
        );
        assert_has(
            &msg,
            &[
                "feature view \"activity\"",
                "unknown entity \"loan\"",
                "applicant",
            ],
        );
    }

    #[test]
    fn duplicate_entity() {
        let text = GOOD.replacen(
            "[[feature_views]]",
            "[[entities]]\nname = \"applicant\"\njoin_key = \"x\"\n\n[[feature_views]]",
            1,
        );
        let msg = parse(&text).unwrap_err().to_string();
        assert_has(&msg, &["entity \"applicant\" is defined twice"]);
    }

    #[test]
    fn entity_dtype_is_int64_or_string() {
        let msg = error_with("dtype = \"INT64\"\n\n", "dtype = \"FP64\"\n\n");
        assert_has(&msg, &["entity \"applicant\"", "INT64 or STRING, not FP64"]);
        let msg = error_with("dtype = \"INT64\"\n\n", "dtype = \"INT32\"\n\n");
        assert_has(&msg, &["entity \"applicant\"", "unknown dtype \"INT32\""]);
        let r =
            parse(&GOOD.replacen("dtype = \"INT64\"\n\n", "dtype = \"STRING\"\n\n", 1)).unwrap();
        let p = r.view("profile").unwrap();
        assert_eq!(p.join_keys[0].dtype, Dtype::String);
        assert_eq!(p.stored_schema().keys[0].kind, "STRING");
    }

    /// A view of two entities (a composite key), a STRING-keyed entity, and a service over
    /// views of different entities.
    #[test]
    fn composite_keys_and_services_across_entities() {
        let text = GOOD.replacen(
            "[[feature_views]]",
            "[[entities]]\nname = \"merchant\"\njoin_key = \"merchant_code\"\ndtype = \"STRING\"\n\n\
             [[feature_views]]\nname = \"pair\"\nentities = [\"applicant\", \"merchant\"]\n\
             source = \"p.parquet\"\ntimestamp_field = \"ts\"\nfields = [{ name = \"n\", dtype = \"INT64\" }]\n\n\
             [[feature_views]]",
            1,
        );
        let r = parse(&text).unwrap();
        let pair = r.view("pair").unwrap();
        assert_eq!(pair.join_key_names(), ["applicant_id", "merchant_code"]);
        assert_eq!(pair.entities, ["applicant", "merchant"]);
        let s = pair.stored_schema();
        assert_eq!(
            s.keys,
            vec![
                StoredField::new("applicant_id", "INT64"),
                StoredField::new("merchant_code", "STRING")
            ]
        );
        let refs = r.parse_refs(&["profile:annual_income", "pair:n"]).unwrap();
        let keys: Vec<String> = r.join_keys(&refs).into_iter().map(|k| k.name).collect();
        assert_eq!(keys, ["applicant_id", "merchant_code"]);

        let both = text.replacen(
            "entities = [\"applicant\", \"merchant\"]",
            "entity = \"applicant\"\nentities = [\"merchant\"]",
            1,
        );
        assert_has(
            &parse(&both).unwrap_err().to_string(),
            &["feature view \"pair\": give entity or entities, not both"],
        );
        let twice = text.replacen(
            "[\"applicant\", \"merchant\"]",
            "[\"applicant\", \"applicant\"]",
            1,
        );
        assert_has(
            &parse(&twice).unwrap_err().to_string(),
            &["join key \"applicant_id\" is listed twice"],
        );
        let clash = text.replacen(
            "join_key = \"merchant_code\"",
            "join_key = \"applicant_id\"",
            1,
        );
        assert_has(
            &parse(&clash).unwrap_err().to_string(),
            &["join key \"applicant_id\" is STRING here but INT64 in entity \"applicant\""],
        );
        let shadow = text.replacen("{ name = \"n\"", "{ name = \"merchant_code\"", 1);
        assert_has(
            &parse(&shadow).unwrap_err().to_string(),
            &["field \"merchant_code\" has the name of a join key"],
        );
    }

    #[test]
    fn duplicate_view() {
        let msg = error_with("name = \"activity\"", "name = \"profile\"");
        assert_has(&msg, &["feature view \"profile\" is defined twice"]);
    }

    #[test]
    fn bad_ttl() {
        let msg = error_with("ttl = \"400d\"", "ttl = \"400 days\"");
        assert_has(&msg, &["feature view \"profile\"", "ttl \"400 days\""]);
        let msg = error_with("ttl = \"400d\"", "ttl = \"0d\"");
        assert_has(&msg, &["feature view \"profile\"", "positive"]);
    }

    #[test]
    fn bad_field_dtype() {
        let msg = error_with("dtype = \"FP64\" },\n", "dtype = \"FLOAT\" },\n");
        assert_has(
            &msg,
            &[
                "feature view \"profile\"",
                "field \"annual_income\"",
                "FLOAT",
            ],
        );
    }

    #[test]
    fn duplicate_field() {
        let msg = error_with("name = \"fico_score\"", "name = \"annual_income\"");
        assert_has(
            &msg,
            &[
                "feature view \"profile\"",
                "field \"annual_income\" is defined twice",
            ],
        );
    }

    #[test]
    fn field_named_like_a_key_or_timestamp() {
        let msg = error_with("name = \"fico_score\"", "name = \"applicant_id\"");
        assert_has(&msg, &["field \"applicant_id\"", "join key"]);
        let msg = error_with("name = \"fico_score\"", "name = \"created_timestamp\"");
        assert_has(&msg, &["field \"created_timestamp\"", "created timestamp"]);
        let msg = error_with("name = \"debt_to_income\"", "name = \"ts\"");
        assert_has(
            &msg,
            &[
                "feature view \"activity\"",
                "field \"ts\"",
                "timestamp field",
            ],
        );
    }

    #[test]
    fn same_timestamp_and_created_field() {
        let msg = error_with(
            "created_timestamp_field = \"created_timestamp\"",
            "created_timestamp_field = \"event_timestamp\"",
        );
        assert_has(
            &msg,
            &["feature view \"profile\"", "both \"event_timestamp\""],
        );
    }

    #[test]
    fn view_without_fields_or_source() {
        let msg = error_with(
            "fields = [{ name = \"debt_to_income\", dtype = \"FP64\" }]",
            "fields = []",
        );
        assert_has(&msg, &["feature view \"activity\" has no fields"]);
        let msg = error_with("source = \"/abs/activity.parquet\"", "source = \" \"");
        assert_has(&msg, &["feature view \"activity\": source is empty"]);
    }

    #[test]
    fn invalid_names() {
        let msg = error_with("name = \"activity\"", "name = \"act:ivity\"");
        assert_has(&msg, &["feature view name \"act:ivity\" is invalid"]);
        let msg = error_with("name = \"fico_score\"", "name = \"fico score\"");
        assert_has(
            &msg,
            &[
                "feature view \"profile\"",
                "field name \"fico score\" is invalid",
            ],
        );
        let msg = error_with("join_key = \"applicant_id\"", "join_key = \"\"");
        assert_has(
            &msg,
            &["entity \"applicant\": join_key name \"\" is invalid"],
        );
    }

    #[test]
    fn service_feature_not_in_view() {
        let msg = error_with("\"profile:annual_income\"", "\"profile:income\"");
        assert_has(
            &msg,
            &[
                "feature service \"svc\"",
                "feature view \"profile\" has no field \"income\"",
                "annual_income",
            ],
        );
    }

    #[test]
    fn service_unknown_view() {
        let msg = error_with("\"activity:debt_to_income\"", "\"bureau:debt_to_income\"");
        assert_has(
            &msg,
            &["feature service \"svc\"", "unknown feature view \"bureau\""],
        );
    }

    #[test]
    fn service_malformed_reference() {
        let msg = error_with("\"activity:debt_to_income\"", "\"debt_to_income\"");
        assert_has(
            &msg,
            &[
                "feature service \"svc\"",
                "\"debt_to_income\" is not of the form",
            ],
        );
    }

    #[test]
    fn service_duplicate_features() {
        let msg = error_with("\"activity:debt_to_income\"", "\"profile:annual_income\"");
        assert_has(&msg, &["feature service \"svc\"", "listed twice"]);
        let text = GOOD
            .replacen(
                "{ name = \"debt_to_income\"",
                "{ name = \"annual_income\"",
                1,
            )
            .replacen(
                "\"activity:debt_to_income\"",
                "\"activity:annual_income\"",
                1,
            );
        let msg = parse(&text).unwrap_err().to_string();
        assert_has(&msg, &["both view \"profile\" and view \"activity\""]);
    }

    #[test]
    fn service_request_feature_collisions() {
        let msg = error_with(
            "request_features = [\"loan_amount\"]",
            "request_features = [\"loan_amount\", \"loan_amount\"]",
        );
        assert_has(
            &msg,
            &["feature service \"svc\"", "request feature \"loan_amount\""],
        );
        let msg = error_with(
            "request_features = [\"loan_amount\"]",
            "request_features = [\"annual_income\"]",
        );
        assert_has(
            &msg,
            &["request feature \"annual_income\"", "also a view feature"],
        );
    }

    #[test]
    fn service_empty_or_duplicate() {
        let msg = error_with(
            "features = [\"profile:annual_income\", \"activity:debt_to_income\"]",
            "features = []",
        );
        assert_has(&msg, &["feature service \"svc\" lists no features"]);
        let text = format!(
            "{GOOD}\n[[feature_services]]\nname = \"svc\"\nfeatures = [\"profile:fico_score\"]\n"
        );
        let msg = parse(&text).unwrap_err().to_string();
        assert_has(&msg, &["feature service \"svc\" is defined twice"]);
    }

    #[test]
    fn parse_refs_and_unknown_service() {
        let r = parse(GOOD).unwrap();
        let refs = r
            .parse_refs(&["profile:fico_score", "profile:home_ownership"])
            .unwrap();
        assert_eq!(refs[1].to_string(), "profile:home_ownership");
        let e = r.parse_refs(&["profile:nope"]).unwrap_err().to_string();
        assert_has(&e, &["/repo/features.toml", "no field \"nope\""]);
        let e = r.service_features("nope").unwrap_err().to_string();
        assert_has(&e, &["unknown feature service \"nope\"", "svc"]);
    }
}
