//! Request bodies, read under the server's limits: a byte cap (413, with the rest of the body
//! drained so the client reads the answer) and a read deadline (408); a body sent with
//! `Content-Encoding: gzip` or `deflate` (as Triton's clients send on request) is decompressed
//! under the same byte cap.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::HeaderMap;
use hyper::body::Body;
use hyper::header;

use crate::core::ApiError;

/// Most bytes drained from a refused body so the client reads our 413 instead of a reset.
const LINGER_BYTES: usize = 64 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Compressed bodies up to this size are first decompressed on the request's thread; larger
/// ones on the blocking pool, so that a tokio worker is never held for long.
const INLINE_INFLATE_BYTES: usize = 64 << 10;
/// ... and only while they decompress to at most this much: a small body can inflate a
/// thousandfold, and one that does is decompressed again on the blocking pool.
const INLINE_INFLATED_BYTES: usize = 256 << 10;

/// A body's content coding (`Content-Encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Identity,
    Gzip,
    /// HTTP's `deflate`: a zlib stream (RFC 9110); a raw deflate stream is accepted too.
    Deflate,
}

/// What a request head says about its body: the length it declares and its content coding.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyHead {
    /// `Content-Length`, if any.
    declared: Option<u64>,
    encoding: Encoding,
}

impl BodyHead {
    /// Reads `Content-Length` and `Content-Encoding`; a coding other than identity, gzip or
    /// deflate is a 415 naming the header.
    pub(super) fn of(headers: &HeaderMap) -> Result<Self, ApiError> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok());
        let mut encoding = Encoding::Identity;
        for value in headers.get_all(header::CONTENT_ENCODING) {
            let unsupported = |what: &str| {
                ApiError::UnsupportedMediaType(format!(
                    "header Content-Encoding: {what} is not supported; send identity, gzip or deflate"
                ))
            };
            let value = value.to_str().map_err(|_| unsupported("(not ASCII)"))?;
            for coding in value.split(',').map(str::trim) {
                let next = if coding.is_empty() || coding.eq_ignore_ascii_case("identity") {
                    continue;
                } else if coding.eq_ignore_ascii_case("gzip")
                    || coding.eq_ignore_ascii_case("x-gzip")
                {
                    Encoding::Gzip
                } else if coding.eq_ignore_ascii_case("deflate") {
                    Encoding::Deflate
                } else {
                    return Err(unsupported(&format!("{coding:?}")));
                };
                if encoding != Encoding::Identity {
                    return Err(unsupported(&format!("{value:?} (more than one coding)")));
                }
                encoding = next;
            }
        }
        Ok(Self { declared, encoding })
    }
}

/// Reads the whole body within `limits.body_read_timeout` (else 408) and `max_body_bytes`
/// (else 413), then decodes its content coding, again within `max_body_bytes`.
pub(super) async fn read_body<B>(
    head: BodyHead,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let mut read = pin!(read_body_within(head.declared, body, limit));
    // Most bodies arrived with their head: no timer is armed (nor the clock read) for them.
    let bytes = match poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        Poll::Ready(r) => r?,
        Poll::Pending => tokio::time::timeout(timeout, read)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::RequestTimeout(format!(
                    "request body not received within {} ms (body_read_timeout_ms)",
                    timeout.as_millis()
                )))
            })?,
    };
    let encoding = head.encoding;
    if encoding == Encoding::Identity {
        return Ok(bytes);
    }
    if bytes.len() <= INLINE_INFLATE_BYTES {
        match inflate(&bytes, encoding, limit.min(INLINE_INFLATED_BYTES)) {
            Err(ApiError::PayloadTooLarge(_)) if limit > INLINE_INFLATED_BYTES => {}
            done => return done,
        }
    }
    tokio::task::spawn_blocking(move || inflate(&bytes, encoding, limit))
        .await
        .map_err(|e| ApiError::Internal(format!("request body decompression failed: {e}")))?
}

/// Decompresses `body`; more than `limit` bytes once decompressed is a 413, a corrupt stream a
/// 400.
fn inflate(body: &[u8], encoding: Encoding, limit: usize) -> Result<Bytes, ApiError> {
    use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
    use std::io::Read;
    // A zlib stream starts with CMF/FLG: method 8 (deflate) and a header checksum of 0 mod 31.
    let zlib = body.len() >= 2
        && body[0] & 0x0f == 8
        && (u16::from(body[0]) << 8 | u16::from(body[1])) % 31 == 0;
    let (name, reader): (&str, Box<dyn Read + '_>) = match encoding {
        Encoding::Identity => return Ok(Bytes::copy_from_slice(body)),
        Encoding::Gzip => ("gzip", Box::new(MultiGzDecoder::new(body))),
        Encoding::Deflate if zlib => ("deflate", Box::new(ZlibDecoder::new(body))),
        Encoding::Deflate => ("deflate", Box::new(DeflateDecoder::new(body))),
    };
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            ApiError::BadRequest(format!(
                "request body is not valid {name} data (Content-Encoding: {name}): {e}"
            ))
        })?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "request body exceeds the {limit}-byte limit (max_body_bytes) once decompressed"
        )));
    }
    Ok(Bytes::from(out))
}

async fn read_body_within<B>(
    declared: Option<u64>,
    body: B,
    limit: usize,
) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body exceeds the {limit}-byte limit (max_body_bytes)"
        ))
    };
    let mut body = body;
    if declared.is_some_and(|n| n > limit as u64) {
        linger(body);
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    let mut first: Option<Bytes> = None;
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("could not read request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            let held = first.as_ref().map_or(0, Bytes::len) + buf.len();
            if held + data.len() > limit {
                linger(body);
                return Err(too_large());
            }
            // Most bodies arrive as one frame: keep it without copying.
            match first.take() {
                None if buf.is_empty() => first = Some(data),
                prev => {
                    if let Some(prev) = prev {
                        buf.reserve(
                            declared
                                .map_or(0, |n| n as usize)
                                .max(prev.len() + data.len()),
                        );
                        buf.extend_from_slice(&prev);
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}

/// Reads and discards the rest of a refused body in the background (bounded in bytes and
/// time): closing a socket with unread input makes the kernel send a reset, which can destroy
/// the error response before the client reads it.
fn linger<B>(mut body: B)
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let drain = async {
            let mut seen = 0usize;
            while let Some(Ok(frame)) = body.frame().await {
                seen += frame.data_ref().map_or(0, |d| d.len());
                if seen > LINGER_BYTES {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER_TIME, drain).await;
    });
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

    use super::*;

    fn head(pairs: &[(&str, &str)]) -> Result<BodyHead, ApiError> {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        BodyHead::of(&h)
    }

    fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
        match encoding {
            "gzip" => {
                let mut e = GzEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zlib" => {
                let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => {
                let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    async fn read(pairs: &[(&str, &str)], body: Vec<u8>, limit: usize) -> Result<Bytes, ApiError> {
        let body = http_body_util::Full::new(Bytes::from(body));
        read_body(head(pairs)?, body, limit, Duration::from_secs(1)).await
    }

    #[test]
    fn content_codings_are_parsed_and_unknown_ones_refused() {
        assert_eq!(head(&[]).unwrap().encoding, Encoding::Identity);
        assert_eq!(
            head(&[("content-encoding", "GZIP")]).unwrap().encoding,
            Encoding::Gzip
        );
        assert_eq!(
            head(&[("content-encoding", "identity, deflate")])
                .unwrap()
                .encoding,
            Encoding::Deflate
        );
        assert_eq!(
            head(&[("content-length", "12")]).unwrap().declared,
            Some(12)
        );
        for bad in ["br", "zstd", "gzip, deflate"] {
            let e = head(&[("content-encoding", bad)]).unwrap_err();
            assert!(matches!(e, ApiError::UnsupportedMediaType(_)), "{bad}: {e}");
            assert!(e.to_string().contains("Content-Encoding"), "{e}");
        }
    }

    #[tokio::test]
    async fn compressed_bodies_are_decoded() {
        let json = br#"{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}"#;
        for (coding, format) in [("gzip", "gzip"), ("deflate", "zlib"), ("deflate", "raw")] {
            let got = read(
                &[("content-encoding", coding)],
                compress(format, json),
                1 << 20,
            )
            .await
            .unwrap();
            assert_eq!(&got[..], &json[..], "{coding} ({format})");
        }
        // Incompressible, so that the compressed body takes the blocking pool.
        let mut x = 1u32;
        let noise: Vec<u8> = (0..256 << 10)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        let packed = compress("gzip", &noise);
        assert!(packed.len() > INLINE_INFLATE_BYTES);
        let got = read(&[("content-encoding", "gzip")], packed, 1 << 20)
            .await
            .unwrap();
        assert_eq!(&got[..], &noise[..]);
        // Trailing garbage after the gzip member is a corrupt body.
        let mut noisy = compress("gzip", json);
        noisy.extend_from_slice(b"trailing bytes");
        let e = read(&[("content-encoding", "gzip")], noisy, 1 << 20)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(_)), "{e}");
    }

    #[tokio::test]
    async fn decompression_is_bounded_and_corrupt_streams_are_400() {
        // A small body that inflates past the limit: 413, not a 1 MiB allocation.
        let bomb = compress("gzip", &vec![0u8; 1 << 20]);
        let e = read(&[("content-encoding", "gzip")], bomb, 64 << 10)
            .await
            .unwrap_err();
        assert!(matches!(e, ApiError::PayloadTooLarge(_)), "{e}");
        assert!(e.to_string().contains("decompressed"), "{e}");
        // A small body that inflates past what is decompressed inline, within the limit: the
        // blocking pool finishes it.
        let big = vec![b'x'; 2 * INLINE_INFLATED_BYTES];
        let got = read(
            &[("content-encoding", "gzip")],
            compress("gzip", &big),
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(got.len(), big.len());
        let e = read(
            &[("content-encoding", "gzip")],
            b"not gzip".to_vec(),
            1 << 20,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ApiError::BadRequest(_)), "{e}");
        assert!(e.to_string().contains("gzip"), "{e}");
    }
}
