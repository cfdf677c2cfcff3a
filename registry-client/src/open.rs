//! One string names a registry: [`open_registry`] / [`open_writer`] pick the backend.
//!
//! | spec | backend |
//! | --- | --- |
//! | `/srv/registry`, `./reg`, `file:///srv/registry` | [`DirRegistry`] |
//! | `http://host/path`, `https://…` (feature `https`) | [`HttpRegistry`] (read-only) |
//! | `mlflow://host:port[/prefix]`, `mlflow+http://…`, `mlflow+https://…` | [`MlflowRegistry`] |

use std::sync::Arc;

use crate::dir::DirRegistry;
use crate::error::RegistryError;
use crate::http::HttpRegistry;
use crate::mlflow::MlflowRegistry;
use crate::registry::{Registry, RegistryWriter};
use crate::transport::RemoteOptions;

/// What a registry spec names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrySpec {
    Dir(std::path::PathBuf),
    /// Base URL of a static mirror.
    Http(String),
    /// Base URL of an MLflow tracking server (`http(s)://…`).
    Mlflow(String),
}

impl RegistrySpec {
    pub fn parse(spec: &str) -> Result<Self, RegistryError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(RegistryError::Invalid("empty registry spec".into()));
        }
        if let Some(rest) = spec.strip_prefix("mlflow://") {
            return Ok(Self::Mlflow(format!("http://{rest}")));
        }
        if let Some(rest) = spec.strip_prefix("mlflow+") {
            if rest.starts_with("http://") || rest.starts_with("https://") {
                return Ok(Self::Mlflow(rest.to_string()));
            }
            return Err(RegistryError::Invalid(format!(
                "{spec}: expected mlflow://host:port or mlflow+http(s)://host:port[/prefix]"
            )));
        }
        if spec.starts_with("http://") || spec.starts_with("https://") {
            return Ok(Self::Http(spec.to_string()));
        }
        if let Some(path) = spec.strip_prefix("file://") {
            return Ok(Self::Dir(path.into()));
        }
        if let Some((scheme, _)) = spec.split_once("://") {
            return Err(RegistryError::Invalid(format!(
                "{spec}: unknown registry scheme {scheme:?} (use a directory, http(s)://, or mlflow://)"
            )));
        }
        Ok(Self::Dir(spec.into()))
    }
}

/// Opens a registry for reading. A directory must exist.
pub fn open_registry(spec: &str, opts: &RemoteOptions) -> Result<Arc<dyn Registry>, RegistryError> {
    Ok(match RegistrySpec::parse(spec)? {
        RegistrySpec::Dir(path) => Arc::new(DirRegistry::open(path)?),
        RegistrySpec::Http(url) => Arc::new(HttpRegistry::new(&url, opts)?),
        RegistrySpec::Mlflow(url) => Arc::new(MlflowRegistry::new(&url, opts)?),
    })
}

/// Opens a registry for writing (a directory is created if needed). A static HTTP mirror is
/// read-only: [`RegistryError::ReadOnly`].
pub fn open_writer(
    spec: &str,
    opts: &RemoteOptions,
) -> Result<Box<dyn RegistryWriter>, RegistryError> {
    Ok(match RegistrySpec::parse(spec)? {
        RegistrySpec::Dir(path) => Box::new(DirRegistry::create(path)?),
        RegistrySpec::Http(url) => {
            return Err(RegistryError::ReadOnly(format!(
                "{url} is a static HTTP mirror; publish and move aliases in the directory it serves"
            )));
        }
        RegistrySpec::Mlflow(url) => Box::new(MlflowRegistry::new(&url, opts)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        assert_eq!(
            RegistrySpec::parse("/srv/reg").unwrap(),
            RegistrySpec::Dir("/srv/reg".into())
        );
        assert_eq!(
            RegistrySpec::parse("file:///srv/reg").unwrap(),
            RegistrySpec::Dir("/srv/reg".into())
        );
        assert_eq!(
            RegistrySpec::parse("http://h:8/reg").unwrap(),
            RegistrySpec::Http("http://h:8/reg".into())
        );
        assert_eq!(
            RegistrySpec::parse("mlflow://h:5000").unwrap(),
            RegistrySpec::Mlflow("http://h:5000".into())
        );
        assert_eq!(
            RegistrySpec::parse("mlflow+https://h/x").unwrap(),
            RegistrySpec::Mlflow("https://h/x".into())
        );
        assert!(RegistrySpec::parse("s3://bucket").is_err());
        assert!(RegistrySpec::parse("mlflow+ftp://h").is_err());
        assert!(RegistrySpec::parse("").is_err());
    }

    #[test]
    fn static_http_is_read_only() {
        let err = open_writer("http://127.0.0.1:9/reg", &RemoteOptions::default())
            .err()
            .unwrap();
        assert!(matches!(err, RegistryError::ReadOnly(_)), "{err}");
    }
}
