//! Requests the gateway could not read as HTTP, answered in its words. hyper answers those
//! itself, before any of the gateway's code sees a request: a malformed request line or header
//! (400), headers over its limits of 100 fields and ~400 KiB (431), an address over its limit
//! (414). Its answer has an empty body, no request id and leaves no line in the log, so a
//! client (or a proxy adding large cookies) was told nothing it could act on and the operator
//! saw nothing. [`Unreadable`] sits between hyper and the socket and swaps that answer, always
//! the last thing hyper writes on the connection, for the gateway's JSON error with an
//! `x-request-id`, and logs the refusal under that id.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{ready, Context, Poll};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ApiError;

/// The statuses hyper answers unreadable requests with.
const STATUSES: [u16; 3] = [400, 414, 431];

/// Unreadable requests answered, by status (as `STATUSES`). Per process, not per gateway:
/// they arrive before any request reaches a gateway's state, and a process serves one gateway.
static ANSWERED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

/// How many unreadable requests were answered with each status, for `/metrics`.
pub(crate) fn answered() -> impl Iterator<Item = (u16, u64)> {
    STATUSES
        .into_iter()
        .zip(&ANSWERED)
        .map(|(status, n)| (status, n.load(Ordering::Relaxed)))
}

/// A connection's stream, as hyper reads and writes it, with its unreadable-request answer
/// swapped (see the module's documentation).
pub(crate) struct Unreadable<S> {
    inner: S,
    swap: Option<Swap>,
}

/// The gateway's answer being written in place of hyper's.
struct Swap {
    bytes: Vec<u8>,
    sent: usize,
    /// How many of hyper's bytes it stands for: what the write reports once it is all sent.
    taken: usize,
}

impl<S> Unreadable<S> {
    pub(crate) fn new(inner: S) -> Self {
        Self { inner, swap: None }
    }
}

impl<S: AsyncWrite + Unpin> Unreadable<S> {
    /// Puts the gateway's answer to `refusal` in place of hyper's: after `before` (what came
    /// before it in the write), for all `taken` bytes of the write.
    fn swap(&mut self, mut before: Vec<u8>, refusal: &Refusal<'_>, taken: usize) {
        before.extend_from_slice(&answer(refusal));
        self.swap = Some(Swap {
            bytes: before,
            sent: 0,
            taken,
        });
    }

    /// Sends what is left of the swap, if any; it stays until a write reports it to hyper.
    fn poll_send_swap(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(swap) = self.swap.as_mut() {
            while swap.sent < swap.bytes.len() {
                let rest = &swap.bytes[swap.sent..];
                let n = ready!(Pin::new(&mut self.inner).poll_write(cx, rest))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                swap.sent += n;
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Finishes the swap and tells hyper its bytes are written. hyper writes the same bytes
    /// again after `Pending`, so the swap stands for them until then.
    fn poll_swap(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        ready!(self.poll_send_swap(cx))?;
        Poll::Ready(Ok(self.swap.take().map_or(0, |swap| swap.taken)))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Unreadable<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Unreadable<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.swap.is_none() {
            let Some(at) = refusal_at(buf) else {
                return Pin::new(&mut this.inner).poll_write(cx, buf);
            };
            this.swap(buf[..at.start].to_vec(), &at, buf.len());
        }
        this.poll_swap(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.swap.is_none() {
            // hyper's answer is a head with no body: all of it is in the last slice.
            let last = bufs.iter().rposition(|b| !b.is_empty());
            let Some((last, at)) = last.and_then(|i| Some((i, refusal_at(&bufs[i])?))) else {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            };
            let mut before: Vec<u8> = bufs[..last]
                .iter()
                .flat_map(|b| b.iter())
                .copied()
                .collect();
            before.extend_from_slice(&bufs[last][..at.start]);
            this.swap(before, &at, bufs.iter().map(|b| b.len()).sum());
        }
        this.poll_swap(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_swap(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send_swap(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// hyper's own answer at the end of a write: where it starts, its status and date.
#[derive(Debug, PartialEq)]
struct Refusal<'a> {
    start: usize,
    status: u16,
    date: Option<&'a str>,
}

/// Finds hyper's answer to an unreadable request at the end of `buf`: a status line of 400,
/// 414 or 431 and exactly the headers hyper gives it (`connection: close`,
/// `content-length: 0`, `date`), then nothing. The gateway's own answers always have a body
/// (JSON, or an event stream), so they never end so.
fn refusal_at(buf: &[u8]) -> Option<Refusal<'_>> {
    // Cheap for every other write: it must end as a head does, and the head is short.
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let from = buf.len().saturating_sub(256);
    let start = from + buf[from..].windows(9).rposition(|w| w == b"HTTP/1.1 ")?;
    let head = std::str::from_utf8(&buf[start..]).ok()?;
    let mut lines = head.strip_suffix("\r\n\r\n")?.split("\r\n");
    let status: u16 = lines.next()?.get(9..12)?.parse().ok()?;
    if !STATUSES.contains(&status) {
        return None;
    }
    let (mut close, mut empty, mut date) = (false, false, None);
    for line in lines {
        let (name, value) = line.split_once(": ")?;
        match (name.to_ascii_lowercase().as_str(), value) {
            ("connection", "close") => close = true,
            ("content-length", "0") => empty = true,
            ("date", value) => date = Some(value),
            _ => return None,
        }
    }
    (close && empty).then_some(Refusal {
        start,
        status,
        date,
    })
}

/// The gateway's answer for `refusal`, logged as every refused request is.
fn answer(refusal: &Refusal<'_>) -> Vec<u8> {
    let (reason, code, message, detail) = match refusal.status {
        431 => (
            "Request Header Fields Too Large",
            "headers_too_large",
            "The request's headers are too many or too large: the gateway reads at most 100 header fields and about 400 KiB of headers.",
            "Send fewer or smaller headers; if a proxy or browser adds them (cookies, say), clear them or bypass it for the gateway's address.",
        ),
        414 => (
            "URI Too Long",
            "uri_too_long",
            "The request's address is too long for the gateway to read.",
            "Use the routes as documented: their parameters are short (ids, hashes, a stage, a limit); texts go in the body of a POST.",
        ),
        _ => (
            "Bad Request",
            "malformed_request",
            "The request could not be read as HTTP/1.1: its request line or a header is malformed.",
            "Check the client or proxy that sent it: the method, address and version must be separated by single spaces, and each header must be a name, a colon and a value.",
        ),
    };
    if let Some(at) = STATUSES.iter().position(|&s| s == refusal.status) {
        ANSWERED[at].fetch_add(1, Ordering::Relaxed);
    }
    let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_REQUEST);
    let id = uuid::Uuid::new_v4();
    tracing::info_span!("request", request_id = %id)
        .in_scope(|| crate::error::log_refusal(status, code, message));
    let body = ApiError::new(status, code, message, detail).into_body();
    // The body is two fixed sentences and a code: it cannot fail to serialize.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let mut out = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\naccept-encoding: {}\r\n\
         x-request-id: {id}\r\nconnection: close\r\ncontent-length: {}\r\n",
        refusal.status,
        crate::compression::TAKEN,
        body.len()
    );
    if let Some(date) = refusal.date {
        out.push_str(&format!("date: {date}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use idse_protocol::ErrorBody;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const HYPER_431: &[u8] =
        b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
        content-length: 0\r\ndate: Wed, 02 Dec 2026 14:56:35 GMT\r\n\r\n";

    #[test]
    fn only_hypers_own_answer_is_taken_for_a_refusal() {
        let found = refusal_at(HYPER_431).unwrap();
        assert_eq!(
            (found.start, found.status, found.date),
            (0, 431, Some("Wed, 02 Dec 2026 14:56:35 GMT"))
        );
        // After an answer to an earlier request on the same connection.
        let earlier = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        let both = [earlier.as_slice(), HYPER_431].concat();
        assert_eq!(refusal_at(&both).unwrap().start, earlier.len());
        // Not the gateway's answers: with a body, another status, other headers, or cut short.
        for other in [
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".as_slice(),
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\nx-request-id: 1\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            &HYPER_431[..HYPER_431.len() - 2],
            &HYPER_431[10..],
        ] {
            assert_eq!(refusal_at(other), None, "{}", String::from_utf8_lossy(other));
        }
    }

    /// What the other end of a connection reads after `chunks` were written on it, each with
    /// one `write_all` (or together with one `write_vectored`), through a socket buffer of 7
    /// bytes, so every write is partial. Also whether the vectored write took every slice.
    async fn through_small_buffer(chunks: Vec<Vec<u8>>, vectored: bool) -> (Vec<u8>, bool) {
        let (ours, mut theirs) = tokio::io::duplex(7);
        let mut ours = Unreadable::new(ours);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut whole = false;
        if vectored {
            let slices: Vec<_> = chunks.iter().map(|c| io::IoSlice::new(c)).collect();
            let took = ours.write_vectored(&slices).await.unwrap();
            let all = chunks.concat();
            whole = took == all.len();
            ours.write_all(&all[took..]).await.unwrap();
        } else {
            for chunk in chunks {
                ours.write_all(&chunk).await.unwrap();
            }
        }
        ours.shutdown().await.unwrap();
        (reader.await.unwrap(), whole)
    }

    #[tokio::test]
    async fn the_refusal_goes_out_whole_in_the_gateways_words_after_what_came_before() {
        let earlier = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec();
        let chunks = vec![earlier.clone(), HYPER_431.to_vec()];
        let (got, _) = through_small_buffer(chunks.clone(), false).await;
        let (vectored, whole) = through_small_buffer(chunks, true).await;
        // The same but for the request id, and the swap stands for every slice.
        assert_eq!(got.len(), vectored.len());
        assert!(whole);
        assert!(got.starts_with(&earlier));
        let answer = String::from_utf8(got[earlier.len()..].to_vec()).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(head.contains("\r\ncontent-type: application/json\r\n"));
        assert!(
            head.ends_with("\r\ndate: Wed, 02 Dec 2026 14:56:35 GMT"),
            "{head}"
        );
        assert!(head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())));
        let id = head
            .split("\r\n")
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap();
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
        let body: ErrorBody = serde_json::from_str(body).unwrap();
        assert_eq!(body.error, "headers_too_large");
        assert!(
            body.message.contains("100 header fields"),
            "{}",
            body.message
        );

        // Any other bytes pass as they are.
        let plain = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n".to_vec();
        assert_eq!(
            through_small_buffer(vec![plain.clone()], false).await.0,
            plain
        );
        assert_eq!(
            through_small_buffer(vec![plain.clone()], true).await.0,
            plain
        );
    }
}
