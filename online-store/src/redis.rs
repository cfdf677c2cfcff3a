//! The Redis online store.
//!
//! Keys (all binary-safe strings):
//!
//! | key | value |
//! |---|---|
//! | `vane:<view>:<entity key>` | the latest row ([`crate::codec`] format) |
//! | `vane:<view>:schema` | the view's schema JSON |
//! | `vane::meta:<key>` | bookkeeping (e.g. materialization state) |
//!
//! An entity key with a single INT64 is written as its decimal value (as every key was before
//! composite keys, so those stores read as they are); any other key as its [`crate::key`]
//! encoding (binary, starting with the format byte 2). So a row key never collides with
//! `schema`; view names contain no `:`, so `vane::meta:` never collides with a view.
//!
//! Reads are one `MGET` per batch. Writes run a Lua script per chunk of rows that compares the
//! 8 ordered timestamp bytes of the stored and the new row and writes only if the new one is
//! not older: atomic in Redis, so concurrent materialize workers cannot regress a value.
//! Connections come from a small pool (idle connections are reused; a caller that finds none
//! opens another), so concurrent readers never queue behind one socket. Every connection has
//! connect, read and write timeouts: a Redis that is down or stuck gives
//! [`StoreError::Unavailable`] within the timeout, never a hang or a panic.

use std::sync::Mutex;
use std::time::Duration;

use ::redis::{Client, Connection, ErrorKind, RedisError, RedisResult, Script};

use crate::codec::{self, check_rows, check_schema, decode_row, decode_schema, encode_schema};
use crate::{EntityKey, FeatureRow, OnlineStore, StoreError, ViewSchema};

/// Keeps a row unless the stored one has a later event timestamp; returns how many it wrote.
/// KEYS[i] gets ARGV[i]. Bytes 2..9 of a row are its order-preserving timestamp.
const WRITE_IF_NOT_OLDER: &str = r"
local n = 0
for i = 1, #KEYS do
  local new = ARGV[i]
  local old = redis.call('GET', KEYS[i])
  local write = true
  if old and #old >= 9 then
    for j = 2, 9 do
      local a, b = string.byte(old, j), string.byte(new, j)
      if a ~= b then
        write = b > a
        break
      end
    end
  end
  if write then
    redis.call('SET', KEYS[i], new)
    n = n + 1
  end
end
return n
";

/// Rows per script call (a script blocks Redis while it runs: keep each call short).
const SCRIPT_CHUNK: usize = 256;
/// Default connect/read/write timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept for reuse.
const MAX_IDLE: usize = 32;

/// The online store in Redis.
pub struct RedisStore {
    client: Client,
    shown: String,
    timeout: Duration,
    idle: Mutex<Vec<Connection>>,
    script: Script,
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

impl RedisStore {
    /// A store for `url` (`redis://[user:pass@]host:port[/db]` or `redis+unix:///path`). Does
    /// not connect: the first call does, so a server can start while Redis is down.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::with_timeout(url, DEFAULT_TIMEOUT)
    }

    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, StoreError> {
        let shown = redact(url);
        let client = Client::open(url)
            .map_err(|e| StoreError::Invalid(format!("online store {shown}: {e}")))?;
        Ok(Self {
            client,
            shown,
            timeout,
            idle: Mutex::new(Vec::new()),
            script: Script::new(WRITE_IF_NOT_OLDER),
        })
    }

    fn connect(&self) -> RedisResult<Connection> {
        let con = self.client.get_connection_with_timeout(self.timeout)?;
        con.set_read_timeout(Some(self.timeout))?;
        con.set_write_timeout(Some(self.timeout))?;
        Ok(con)
    }

    fn map_err(&self, e: RedisError) -> StoreError {
        let msg = format!("{} ({}): {e}", self.shown, "redis");
        if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_unrecoverable_error()
        {
            return StoreError::Unavailable(msg);
        }
        match e.kind() {
            ErrorKind::UnexpectedReturnType | ErrorKind::Parse => StoreError::Corrupt(msg),
            // Busy, loading, read-only replica, OOM, auth, …: the store cannot serve now.
            _ => StoreError::Unavailable(msg),
        }
    }

    /// Runs `f` on a pooled connection. A connection that failed is dropped, not pooled; a
    /// script cache flushed under us (`NOSCRIPT`) is reloaded and `f` retried once.
    fn with_conn<T>(
        &self,
        mut f: impl FnMut(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut con = match pooled {
            Some(c) => c,
            None => self.connect().map_err(|e| self.map_err(e))?,
        };
        let mut result = f(&mut con);
        if let Err(e) = &result
            && e.kind() == ErrorKind::Server(::redis::ServerErrorKind::NoScript)
        {
            result = self
                .script
                .prepare_invoke()
                .load(&mut con)
                .and_then(|_| f(&mut con));
        }
        match result {
            Ok(v) => {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                if idle.len() < MAX_IDLE {
                    idle.push(con);
                }
                Ok(v)
            }
            Err(e) => Err(self.map_err(e)),
        }
    }

    fn schema_key(view: &str) -> String {
        format!("vane:{view}:schema")
    }

    fn row_key(view: &str, key: &EntityKey) -> Vec<u8> {
        if let Some(id) = key.single_int() {
            return format!("vane:{view}:{id}").into_bytes();
        }
        let mut k = Vec::with_capacity(view.len() + 6 + key.as_bytes().len());
        k.extend_from_slice(b"vane:");
        k.extend_from_slice(view.as_bytes());
        k.push(b':');
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn mget(&self, keys: &[impl ::redis::ToRedisArgs]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let raw: Vec<Option<Vec<u8>>> =
            self.with_conn(|c| ::redis::cmd("MGET").arg(keys).query(c))?;
        if raw.len() != keys.len() {
            return Err(StoreError::Corrupt(format!(
                "{}: MGET of {} keys answered {} values",
                self.shown,
                keys.len(),
                raw.len()
            )));
        }
        Ok(raw)
    }

    fn meta_key(key: &str) -> String {
        format!("vane::meta:{key}")
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_conn(|c| ::redis::cmd("GET").arg(key).query(c))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.with_conn(|c| ::redis::cmd("SET").arg(key).arg(value).query(c))
    }

    /// `PING`: checks the store is reachable.
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with_conn(|c| ::redis::cmd("PING").query::<String>(c))
            .map(|_| ())
    }
}

impl OnlineStore for RedisStore {
    fn describe(&self) -> String {
        format!("redis {}", self.shown)
    }

    fn write_schema(&self, view: &str, schema: &ViewSchema) -> Result<(), StoreError> {
        check_schema(view, schema)?;
        self.set(&Self::schema_key(view), &encode_schema(schema))
    }

    fn read_schema(&self, view: &str) -> Result<Option<ViewSchema>, StoreError> {
        self.get(&Self::schema_key(view))?
            .map(|b| decode_schema(&b))
            .transpose()
    }

    fn write_batch(
        &self,
        view: &str,
        rows: &[(EntityKey, FeatureRow)],
    ) -> Result<usize, StoreError> {
        let schema = self.read_schema(view)?;
        check_rows(view, schema.as_ref(), rows)?;
        if rows.is_empty() {
            return Ok(0);
        }
        // Encode once; a retry (NOSCRIPT) reuses the pipeline.
        let mut pipe = ::redis::pipe();
        for chunk in rows.chunks(SCRIPT_CHUNK) {
            let mut inv = self.script.prepare_invoke();
            for (key, row) in chunk {
                inv.key(Self::row_key(view, key))
                    .arg(codec::row_to_bytes(row));
            }
            pipe.invoke_script(&inv);
        }
        let counts: Vec<usize> = self.with_conn(|c| pipe.query(c))?;
        Ok(counts.into_iter().sum())
    }

    fn read_batch(
        &self,
        view: &str,
        keys: &[EntityKey],
    ) -> Result<Vec<Option<FeatureRow>>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<Vec<u8>> = keys.iter().map(|k| Self::row_key(view, k)).collect();
        self.mget(&names)?
            .into_iter()
            .map(|v| v.map(|b| decode_row(&b)).transpose())
            .collect()
    }

    fn read_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(&Self::meta_key(key))
    }

    fn write_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.set(&Self::meta_key(key), value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("redis://u:secret@h:6379/1"), "redis://***@h:6379/1");
        assert_eq!(redact("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn down_store_is_unavailable_not_a_panic() {
        // A port nothing listens on: bind, note the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = RedisStore::with_timeout(
            &format!("redis://127.0.0.1:{port}"),
            Duration::from_millis(300),
        )
        .unwrap();
        for r in [
            s.read_schema("v").map(|_| ()),
            s.read_batch("v", &[1.into()]).map(|_| ()),
            s.ping(),
        ] {
            assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
        }
    }

    #[test]
    fn bad_urls_are_invalid() {
        assert!(matches!(
            RedisStore::open("redis://"),
            Err(StoreError::Invalid(_))
        ));
    }
}
