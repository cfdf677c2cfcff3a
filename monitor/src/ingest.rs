//! Sample-stream listeners (TCP and Unix sockets): one task per connection reads
//! length-prefixed frames and hands each body to the [`Engine`].
//!
//! A connection costs at most one frame body of memory ([`wire::MAX_FRAME_BYTES`]), and only
//! as its bytes arrive: a peer announcing a large frame and sending little holds little. A
//! frame that does not decode is counted and skipped (the length prefix keeps the stream in
//! sync); a length over the limit, a frame that stalls for [`FRAME_TIMEOUT`] or a broken
//! socket closes the connection. At most `max_connections` are open at once; further ones
//! are closed at once and counted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use vane_sample_stream as wire;

use crate::engine::Engine;

/// Longest a frame may take to arrive once its length prefix was read.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the monitor accepts sample streams: `tcp://host:port` (or `host:port`) or
/// `unix:///path`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Listen {
    Tcp(String),
    Unix(PathBuf),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(p) = s.strip_prefix("unix://") {
            if p.is_empty() {
                return Err(format!("listen address {s:?} names no socket path"));
            }
            return Ok(Listen::Unix(PathBuf::from(p)));
        }
        let hp = s.strip_prefix("tcp://").unwrap_or(s);
        match hp.rsplit_once(':') {
            Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok() => Ok(Listen::Tcp(hp.into())),
            _ => Err(format!(
                "listen address {s:?}: expected tcp://host:port, host:port or unix:///path"
            )),
        }
    }
}

/// A bound ingest listener.
pub enum Bound {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl Bound {
    pub async fn bind(l: &Listen) -> std::io::Result<Bound> {
        match l {
            Listen::Tcp(a) => Ok(Bound::Tcp(TcpListener::bind(a.as_str()).await?)),
            Listen::Unix(p) => {
                // A socket file left by a previous run would make bind fail.
                if std::fs::symlink_metadata(p)
                    .map(|m| {
                        use std::os::unix::fs::FileTypeExt;
                        m.file_type().is_socket()
                    })
                    .unwrap_or(false)
                {
                    let _ = std::fs::remove_file(p);
                }
                Ok(Bound::Unix(UnixListener::bind(p)?, p.clone()))
            }
        }
    }

    /// `tcp://ADDR` or `unix://PATH`, with the port actually bound.
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l) => l
                .local_addr()
                .map(|a| format!("tcp://{a}"))
                .unwrap_or_else(|_| "tcp://?".into()),
            Bound::Unix(_, p) => format!("unix://{}", p.display()),
        }
    }
}

/// Accepts connections until the task is dropped.
pub async fn serve(bound: Bound, engine: Arc<Engine>, max_connections: usize) {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let accepted: std::io::Result<Box<dyn AsyncRead + Send + Unpin>> = match &bound {
            Bound::Tcp(l) => l.accept().await.map(|(s, _)| {
                let _ = s.set_nodelay(true);
                Box::new(s) as _
            }),
            Bound::Unix(l, _) => l.accept().await.map(|(s, _)| Box::new(s) as _),
        };
        let stream = match accepted {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            engine.metrics().connections_refused.inc();
            drop(stream);
            continue;
        };
        let engine = engine.clone();
        tokio::spawn(async move {
            engine.metrics().connections.inc();
            connection(stream, &engine).await;
            engine.metrics().connections.dec();
            drop(permit);
        });
    }
}

async fn connection(mut stream: Box<dyn AsyncRead + Send + Unpin>, engine: &Engine) {
    let mut body = Vec::new();
    loop {
        let mut prefix = [0u8; 4];
        match stream.read(&mut prefix[..1]).await {
            Ok(1) => {}
            _ => return, // closed between frames (or broken): nothing half-read
        }
        if stream.read_exact(&mut prefix[1..]).await.is_err() {
            engine.metrics().frame("truncated");
            return;
        }
        let len = match wire::body_len(prefix) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!(error = %e, "closing a sample stream");
                engine.metrics().frame(crate::engine::frame_outcome(&e));
                return;
            }
        };
        body.clear();
        let read = tokio::time::timeout(
            FRAME_TIMEOUT,
            (&mut stream).take(len as u64).read_to_end(&mut body),
        )
        .await;
        match read {
            Ok(Ok(n)) if n == len => engine.handle_frame(&body),
            _ => {
                engine.metrics().frame("truncated");
                return;
            }
        }
        // One burst of large frames should not pin its buffer forever.
        if body.capacity() > (1 << 20) && len < (64 << 10) {
            body = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_parse() {
        assert_eq!(
            "tcp://0.0.0.0:9101".parse::<Listen>().unwrap(),
            Listen::Tcp("0.0.0.0:9101".into())
        );
        assert_eq!(
            "unix:///tmp/m.sock".parse::<Listen>().unwrap(),
            Listen::Unix("/tmp/m.sock".into())
        );
        assert!("nowhere".parse::<Listen>().is_err());
    }
}
