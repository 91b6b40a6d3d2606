//! Compression on the wire, gzip and zstd: answers go compressed to clients that ask for it
//! (`Accept-Encoding`, through tower-http), and request bodies sent compressed
//! (`Content-Encoding`) are uncompressed here, within the body size limit.

use axum::http::{header, HeaderMap, StatusCode};
use bytes::Bytes;

use crate::ApiError;

/// A compression of request bodies the gateway takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Coding {
    Gzip,
    Zstd,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    fn named(name: &[u8]) -> Option<Self> {
        if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            Some(Self::Gzip)
        } else if name.eq_ignore_ascii_case(b"zstd") {
            Some(Self::Zstd)
        } else {
            None
        }
    }

    /// How a request body is compressed (its `Content-Encoding`): `None` if it is not.
    pub(crate) fn of_body(headers: &HeaderMap) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(None);
        };
        let name = value.as_bytes().trim_ascii();
        if name.is_empty() || name.eq_ignore_ascii_case(b"identity") {
            return Ok(None);
        }
        // Read as it is, a body compressed otherwise would be explained as "not valid JSON".
        Self::named(name).map(Some).ok_or_else(|| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_encoding",
                format!(
                    "The request body is compressed as `{}` (its Content-Encoding header), which \
                     the gateway does not take.",
                    String::from_utf8_lossy(name)
                ),
                "Compress the JSON body with gzip or zstd (one of them, not both), or send it \
                 uncompressed without a Content-Encoding header.",
            )
        })
    }

    /// Uncompresses a request body, refusing it if it is not valid data of this coding or
    /// comes to more than `limit` bytes (reading one byte past the limit at most, so a small
    /// body that would inflate to gigabytes costs nothing).
    pub(crate) fn unpack(self, sent: &[u8], limit: usize) -> Result<Bytes, ApiError> {
        use std::io::Read;
        let corrupt = || {
            ApiError::bad_request(
                "invalid_compression",
                format!(
                    "The request body is not valid {} data, as its Content-Encoding header says.",
                    self.name()
                ),
                format!(
                    "Compress the whole JSON body with {}{}, or send it uncompressed without a \
                     Content-Encoding header.",
                    self.name(),
                    if self == Self::Zstd {
                        " (at a level of 19 or below, whose window is at most 8 MiB)"
                    } else {
                        ""
                    }
                ),
            )
        };
        let reader: Box<dyn Read + '_> = match self {
            // Several gzip members one after another are one body (RFC 1952), as `gzip -c a b`
            // writes.
            Self::Gzip => Box::new(flate2::read::MultiGzDecoder::new(sent)),
            Self::Zstd => {
                let mut decoder =
                    zstd::stream::read::Decoder::with_buffer(sent).map_err(|_| corrupt())?;
                // A frame may ask for a window of up to 2 GiB of memory. None larger than the
                // body limit is needed, since a window need not exceed what it uncompresses to,
                // but zstd's levels up to 19 write 8 MiB windows when they do not know the size
                // ahead.
                decoder
                    .window_log_max(window_log(limit).max(23))
                    .map_err(|_| corrupt())?;
                Box::new(decoder)
            }
        };
        let mut out = Vec::with_capacity(sent.len().saturating_mul(4).min(limit));
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|_| corrupt())?;
        if out.len() > limit {
            return Err(crate::extract::too_large(
                "Uncompressed, the request body",
                limit,
            ));
        }
        Ok(out.into())
    }
}

/// The base-2 log of the smallest zstd window that covers `limit` bytes, within what zstd allows
/// (1 KiB to 2 GiB).
fn window_log(limit: usize) -> u32 {
    limit
        .checked_next_power_of_two()
        .map_or(usize::BITS, usize::trailing_zeros)
        .clamp(10, 31)
}

/// Answers of 1 KiB or more go compressed (zstd, else gzip) to a client that asks for it: a pull
/// of seven 10 KiB stages of distinct prose, 72 KiB, goes in 32 KiB (37 with gzip), which a team
/// reaching its gateway over the internet feels. The fastest levels, because the gateway compresses for
/// every client on its own machine (zstd adds about 0.2 ms to a 73 KiB pull here, gzip 0.7 ms).
/// Event streams are never compressed: a compressor would hold each event back until its buffer
/// filled.
pub(crate) fn answers(
) -> tower_http::compression::CompressionLayer<impl tower_http::compression::Predicate> {
    use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Fastest)
        .compress_when(SizeAbove::new(1024).and(NotForContentType::SSE))
}

/// Says in every answer which compressions of request bodies the gateway takes (RFC 7694's
/// `Accept-Encoding` in a response), so that clients compress their pushes only to a gateway
/// that says it takes them; the IDSE client learns it from its first answer.
pub(crate) async fn advertise(mut res: axum::response::Response) -> axum::response::Response {
    res.headers_mut().insert(
        header::ACCEPT_ENCODING,
        header::HeaderValue::from_static(TAKEN),
    );
    res
}

/// The codings of request bodies the gateway takes, as `advertise` says them.
pub(crate) const TAKEN: &str = "zstd, gzip";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_unpack_within_the_limit() {
        use std::io::Write;
        let text = "## Plan\n\n- [ ] write the spec, then the tasks\n".repeat(200);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(text.as_bytes()).unwrap();
        let gzip = gzip.finish().unwrap();
        let zstd = zstd::encode_all(text.as_bytes(), 3).unwrap();
        for (coding, packed) in [(Coding::Gzip, gzip), (Coding::Zstd, zstd)] {
            assert!(
                packed.len() * 10 < text.len(),
                "{coding:?}: {}",
                packed.len()
            );
            let back = coding.unpack(&packed, text.len()).unwrap();
            assert_eq!(back, text.as_bytes());
            // One byte under its size, the same body is refused.
            let e = coding.unpack(&packed, text.len() - 1).unwrap_err();
            assert_eq!(e.code, "payload_too_large");
        }
    }

    #[test]
    fn zstd_windows_cover_the_limit() {
        assert_eq!(window_log(0), 10);
        assert_eq!(window_log(1024), 10);
        assert_eq!(window_log(1025), 11);
        assert_eq!(window_log(10 << 20), 24);
        assert_eq!(window_log(usize::MAX), 31);
    }
}
