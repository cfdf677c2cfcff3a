//! A client connection's socket as hyper sees it: [`OneWrite`] sends a small response (head and
//! body) with one `write` instead of a two-part `writev`.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::rt::{Read, ReadBufCursor, Write};

/// Responses up to this many bytes (head and body) are copied into one buffer and sent with
/// one `write`. The kernel then copies and checks one user buffer instead of two: about 2 %
/// less server CPU per single-row request (BENCHMARKS.md, run Z). Larger ones go out as they
/// are, with `writev`, uncopied (hyper's own `writev(false)` would copy every body).
const COALESCE_MAX: usize = 4096;

/// Wraps a connection's I/O; see [`COALESCE_MAX`].
pub struct OneWrite<T>(pub T);

impl<T: Read + Unpin> Read for OneWrite<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: Write + Unpin> Write for OneWrite<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }

    // Vectored: hyper keeps a response's body in its own buffer rather than copying it into
    // the head's; this decides per write whether to join them.
    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if bufs.len() < 2 || total > COALESCE_MAX {
            return Pin::new(&mut self.0).poll_write_vectored(cx, bufs);
        }
        JOINED.with_borrow_mut(|joined| {
            joined.clear();
            for b in bufs {
                joined.extend_from_slice(b);
            }
            // A short write covers a prefix of the joined bytes, so the same prefix of `bufs`:
            // hyper advances its buffers by the count either way.
            Pin::new(&mut self.0).poll_write(cx, joined)
        })
    }
}

thread_local! {
    /// Where [`OneWrite`] joins a write's parts: reused, so joining allocates and zeroes
    /// nothing.
    static JOINED: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(COALESCE_MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records each write call: (vectored, bytes).
    #[derive(Default)]
    struct Recorder {
        calls: Vec<(bool, Vec<u8>)>,
        /// Accepts at most this many bytes per call.
        limit: usize,
    }

    impl Write for Recorder {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.limit);
            self.calls.push((false, buf[..n].to_vec()));
            Poll::Ready(Ok(n))
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let all: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
            let n = all.len().min(self.limit);
            self.calls.push((true, all[..n].to_vec()));
            Poll::Ready(Ok(n))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn write(io: &mut OneWrite<Recorder>, parts: &[&[u8]]) -> usize {
        let bufs: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(io).poll_write_vectored(&mut cx, &bufs) {
            Poll::Ready(Ok(n)) => n,
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_small_head_and_body_go_out_in_one_plain_write() {
        let mut io = OneWrite(Recorder {
            limit: usize::MAX,
            ..Default::default()
        });
        assert_eq!(write(&mut io, &[b"HTTP/1.1 200 OK\r\n\r\n", b"{}"]), 21);
        assert_eq!(
            io.0.calls,
            vec![(false, b"HTTP/1.1 200 OK\r\n\r\n{}".to_vec())]
        );
    }

    #[test]
    fn large_or_single_buffers_are_passed_through_uncopied() {
        let mut io = OneWrite(Recorder {
            limit: usize::MAX,
            ..Default::default()
        });
        let big = vec![7u8; COALESCE_MAX];
        assert_eq!(write(&mut io, &[b"head", &big]), COALESCE_MAX + 4);
        assert_eq!(write(&mut io, &[b"only"]), 4);
        assert!(io.0.calls.iter().all(|(vectored, _)| *vectored));
        assert_eq!(io.0.calls[1].1, b"only");
    }

    #[test]
    fn a_short_write_reports_the_prefix_it_sent() {
        let mut io = OneWrite(Recorder {
            limit: 5,
            ..Default::default()
        });
        assert_eq!(write(&mut io, &[b"abc", b"defg"]), 5);
        assert_eq!(io.0.calls, vec![(false, b"abcde".to_vec())]);
    }
}
