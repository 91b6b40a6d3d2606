use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::compression::Coding;
use crate::input::Limits;
use crate::{ApiError, AppState};

/// A JSON body whose every failure is a sentence: too large, not UTF-8, not JSON, or a field of
/// the wrong type (named by its path).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body, &state.limits).await?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Reads `/mcp` request bodies before rmcp does, so that one too large, compressed in a way the
/// gateway does not take, or that stops arriving gets the same `{code, message}` answer as on
/// every other route (rmcp answers a body that stops arriving with a plain-text 500 that quotes
/// the internal error). rmcp gets the body uncompressed.
pub(crate) async fn whole_body(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let (mut parts, body) = req.into_parts();
    let bytes = read_body(&parts.headers, body, &state.limits).await?;
    parts.headers.remove(axum::http::header::CONTENT_ENCODING);
    parts
        .headers
        .insert(axum::http::header::CONTENT_LENGTH, bytes.len().into());
    Ok(next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await)
}

/// Reads a whole request body, up to the gateway's size limit, and uncompresses it if it came
/// compressed (gzip or zstd); each way it can fail is a sentence that says what to fix. The limit
/// holds for the body as sent and again for it uncompressed, so a small body that inflates to
/// gigabytes is refused after reading one byte past the limit.
async fn read_body(headers: &HeaderMap, body: Body, limits: &Limits) -> Result<Bytes, ApiError> {
    let coding = Coding::of_body(headers)?;
    let sent = read_sent(headers, body, limits).await?;
    match coding {
        None => Ok(sent),
        Some(coding) => coding.unpack(&sent, limits.max_body_bytes),
    }
}

/// Reads a request body as it was sent, up to the gateway's size limit.
async fn read_sent(
    headers: &HeaderMap,
    mut body: Body,
    limits: &Limits,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let waits = headers
        .get(axum::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if waits && declared.is_some_and(|n| n > limits.max_body_bytes as u64) {
        // The client waits for a go-ahead before it sends the body (curl does so for large
        // ones), so it gets the 413 without uploading anything. A client already sending is
        // read up to the limit instead: answered mid-upload, it would see a broken pipe, not
        // the answer.
        return Err(too_large("The request body", limits.max_body_bytes));
    }
    // Room for what the client declared, so a push is copied once rather than through every
    // doubling; at most 1 MiB ahead of the data, so a false length reserves little.
    let room = declared.map_or(0, |n| n.min(1 << 20) as usize);
    let mut bytes = bytes::BytesMut::with_capacity(room);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(unreadable)?.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > limits.max_body_bytes {
            // Read on, and drop, what the client is still sending: closed on mid-upload, it
            // would see a broken pipe rather than this answer (Python's HTTP clients do).
            let more = DRAIN_FACTOR.saturating_mul(limits.max_body_bytes);
            let _ = tokio::time::timeout(DRAIN_TIME, drain(&mut body, more)).await;
            return Err(too_large("The request body", limits.max_body_bytes));
        }
        bytes.extend_from_slice(&data);
    }
    Ok(bytes.freeze())
}

/// How much of an over-limit body is read and dropped so the client sees the 413 (as a
/// multiple of the limit), and for how long at most.
const DRAIN_FACTOR: usize = 8;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads and drops up to `more` bytes of `body`, or all of it.
async fn drain(body: &mut Body, mut more: usize) {
    while let Some(Ok(frame)) = body.frame().await {
        let len = frame.data_ref().map_or(0, bytes::Bytes::len);
        more = match more.checked_sub(len) {
            Some(left) => left,
            None => return,
        };
    }
}

/// Why a body could not be read: it stopped arriving (the body timeout of `serve`), or the
/// connection failed.
fn unreadable(e: axum::Error) -> ApiError {
    let timed_out = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .any(|e| e.is::<tower_http::timeout::TimeoutError>());
    if timed_out {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body stopped arriving before it was complete, so the gateway stopped \
             waiting for it.",
            "Send the request again; if it keeps happening, check the network between you and \
             the gateway.",
        )
    } else {
        ApiError::bad_request(
            "unreadable_body",
            "The request body could not be read.",
            "Send the whole JSON body in one request.",
        )
    }
}

/// A body over the `limit`: `body` names it ("The request body", or "Uncompressed, the request
/// body" for one that inflated past it).
pub(crate) fn too_large(body: &str, limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!(
            "{body} is larger than the gateway's limit of {}.",
            crate::input::human_bytes(limit)
        ),
        "Push fewer stages at a time, or ask the gateway's operator to raise --max-body-bytes.",
    )
}

/// Parses a JSON body, turning every serde failure into a sentence that says what to fix.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return Err(ApiError::bad_request(
                "invalid_encoding",
                format!(
                    "The request body is not valid UTF-8 (bad byte at offset {}).",
                    e.valid_up_to()
                ),
                "Encode the JSON body, and every text in it, as UTF-8.",
            ))
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "The request body is empty.",
            "Send a JSON object, e.g. {\"project_name\": \"demo\", \"artifacts\": {}}.",
        ));
    }
    // From the checked `str`, so serde_json does not check every string's UTF-8 again.
    let mut de = serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        match inner.classify() {
            serde_json::error::Category::Data => ApiError::bad_request(
                "invalid_field",
                if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
                    // Every body the gateway takes is an object; serde reads a struct from an
                    // array too, and would explain it by the struct's number of fields.
                    "The request body is not a JSON object.".to_owned()
                } else if path == "." {
                    format!("The request body has the wrong shape: {inner}.")
                } else {
                    format!("The field `{path}` is wrong: {inner}.")
                },
                "Fix that field; DESIGN.md section 2 lists every field and its type.",
            ),
            // serde_json names this case only in its message; explained as a syntax error at
            // some column, it sends the client looking for a typo.
            _ if inner.to_string().starts_with("recursion limit exceeded") => ApiError::bad_request(
                "invalid_json",
                "The request body nests arrays or objects more than 128 levels deep.",
                "Flatten `state_json` and `session_metadata`; the pipeline's state needs only a few levels.",
            ),
            _ => ApiError::bad_request(
                "invalid_json",
                format!(
                    "The request body is not valid JSON (line {}, column {}).",
                    inner.line(),
                    inner.column()
                ),
                "Send a well-formed JSON object.",
            ),
        }
    })?;
    de.end().map_err(|_| {
        ApiError::bad_request(
            "invalid_json",
            "The request body has text after the JSON object.",
            "Send exactly one JSON object.",
        )
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use idse_protocol::PushRequest;

    #[test]
    fn wrong_types_name_the_field() {
        let e = parse_json::<PushRequest>(br#"{"project_name":"p","artifacts":{"intent_md":5}}"#)
            .unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert!(e.message.contains("artifacts.intent_md"), "{}", e.message);
    }

    #[test]
    fn a_body_that_is_not_an_object_is_named_so() {
        for body in [&b"[]"[..], b" [\"demo\", {}]", b"\"demo\"", b"42"] {
            let e = parse_json::<PushRequest>(body).unwrap_err();
            assert_eq!(e.code, "invalid_field");
            assert_eq!(e.message, "The request body is not a JSON object.");
        }
    }

    #[test]
    fn a_stage_given_twice_is_refused() {
        let e = parse_json::<PushRequest>(
            br#"{"project_name":"p","artifacts":{"intent_md":"a","intent_md":"b"}}"#,
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_field");
        assert!(e.message.contains("`artifacts`"), "{}", e.message);
        assert!(
            e.message.contains("`intent_md` is given twice"),
            "{}",
            e.message
        );
        let e = parse_json::<PushRequest>(
            br#"{"project_name":"p","artifacts":{},"base":{"spec_md":"a","spec_md":"a"}}"#,
        )
        .unwrap_err();
        assert!(e.message.contains("`base`"), "{}", e.message);
        // Distinct keys, a null base and a null text still parse as before.
        let ok = parse_json::<PushRequest>(
            br#"{"project_name":"p","artifacts":{"intent_md":"a","spec_md":null},"base":null}"#,
        )
        .unwrap();
        assert_eq!(ok.artifacts.len(), 2);
        assert_eq!(ok.base, None);
    }

    #[test]
    fn nesting_too_deep_is_named_so() {
        let body = format!(
            r#"{{"project_name":"p","state_json":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        let e = parse_json::<PushRequest>(body.as_bytes()).unwrap_err();
        assert_eq!(e.code, "invalid_json");
        assert!(e.message.contains("128 levels deep"), "{}", e.message);
        // Deep, but within serde_json's limit, still parses.
        let body = format!(
            r#"{{"project_name":"p","state_json":{}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse_json::<PushRequest>(body.as_bytes()).is_ok());
    }

    #[test]
    fn syntax_errors_and_bad_bytes_are_distinguished() {
        assert_eq!(
            parse_json::<PushRequest>(b"{\"project_name\":")
                .unwrap_err()
                .code,
            "invalid_json"
        );
        assert_eq!(
            parse_json::<PushRequest>(b"  ").unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            parse_json::<PushRequest>(b"{\"project_name\":\"\xff\"}")
                .unwrap_err()
                .code,
            "invalid_encoding"
        );
        let missing = parse_json::<PushRequest>(b"{}").unwrap_err();
        assert!(
            missing.message.contains("project_name"),
            "{}",
            missing.message
        );
    }

    use proptest::prelude::*;

    /// JSON-shaped bodies with the push's field names, wrong types and junk mixed in.
    fn body() -> impl Strategy<Value = Vec<u8>> {
        let leaf = prop_oneof![
            Just("null".to_owned()),
            any::<i64>().prop_map(|n| n.to_string()),
            "[a-z/._ ]{0,12}".prop_map(|s| format!("{s:?}")),
            Just("\"../etc\"".to_owned()),
            Just("true".to_owned()),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["intent_md", "spec_md", "meta_md", "x"]),
                        inner
                    ),
                    0..4
                )
                .prop_map(|kv| format!(
                    "{{{}}}",
                    kv.iter()
                        .map(|(k, v)| format!("{k:?}:{v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            ]
        });
        let fields = prop::collection::vec(
            (
                prop::sample::select(vec![
                    "project_name",
                    "project_id",
                    "artifacts",
                    "base",
                    "session_id",
                    "state_json",
                    "force",
                    "agent",
                ]),
                value,
            ),
            0..6,
        );
        prop_oneof![
            fields.prop_map(|kv| format!(
                "{{{}}}",
                kv.iter()
                    .map(|(k, v)| format!("{k:?}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
            .into_bytes()),
            prop::collection::vec(any::<u8>(), 0..64),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        /// Any body is either a valid push or a 4xx with sentences; never a panic or a 5xx.
        #[test]
        fn push_bodies_parse_or_are_refused_politely(bytes in body()) {
            let limits = crate::Limits::default();
            let outcome = parse_json::<PushRequest>(&bytes)
                .and_then(|req| crate::input::push_input(req, &limits, None));
            if let Err(e) = outcome {
                prop_assert!(e.status.is_client_error(), "{} for {:?}", e.status, String::from_utf8_lossy(&bytes));
                prop_assert!(e.message.ends_with('.') && e.detail.ends_with('.'));
            }
        }
    }
}
