//! Compression on the wire: answers compressed for clients that ask, push bodies taken
//! compressed, and the size limit held for a body once it is uncompressed.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};

use idse_gateway::Limits;
use serde_json::{json, Value};

/// Seven 10 KiB stages of real prose (this repository's docs), none repeating another.
fn seven_stages() -> Value {
    let prose = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/benchmarks.md"),
    ]
    .concat();
    let mut artifacts = serde_json::Map::new();
    for (i, stage) in idse_protocol::Stage::ALL.iter().enumerate() {
        let start = prose
            .char_indices()
            .map(|(at, _)| at)
            .find(|&at| at >= i * 10 * 1024)
            .unwrap();
        let text: String = prose[start..].chars().take(10 * 1024).collect();
        artifacts.insert(stage.artifact_key().to_owned(), json!(text));
    }
    json!({"project_name": "wire", "artifacts": artifacts, "agent": "codex"})
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A client that neither asks for compressed answers nor uncompresses them, so the test sees
/// the bytes on the wire.
fn raw_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_gzip()
        .no_zstd()
        .build()
        .unwrap()
}

/// Sends `body` to `/sync/push` with `encoding` as its Content-Encoding.
async fn push_encoded(gw: &common::TestGateway, encoding: &str, body: Vec<u8>) -> (u16, Value) {
    common::answer(
        raw_client()
            .post(format!("{}/sync/push", gw.url))
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_compressed_to_clients_that_ask() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve(fixture.store.clone(), Limits::default()).await;
    let (code, pushed) = gw.post("/sync/push", &seven_stages()).await;
    assert_eq!(code, 200, "{pushed}");
    let pull = json!({"project_id": pushed["project_id"]});
    let http = raw_client();
    let send = |accept: Option<&'static str>| {
        let mut req = http.post(format!("{}/sync/pull", gw.url)).json(&pull);
        if let Some(accept) = accept {
            req = req.header("accept-encoding", accept);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            // Caches must keep the two forms apart.
            assert_eq!(res.headers()["vary"], "accept-encoding");
            // And clients learn that pushes may come compressed (RFC 7694).
            assert_eq!(res.headers()["accept-encoding"], "zstd, gzip");
            let encoding = res
                .headers()
                .get("content-encoding")
                .map(|v| v.to_str().unwrap().to_owned());
            (encoding, res.bytes().await.unwrap().to_vec())
        }
    };

    let (encoding, plain) = send(None).await;
    assert_eq!(encoding, None, "not asked, not compressed");
    let expected: Value = serde_json::from_slice(&plain).unwrap();
    assert_eq!(
        expected["artifacts"]["spec_md"],
        seven_stages()["artifacts"]["spec_md"]
    );

    let (encoding, gzipped) = send(Some("gzip")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let back: Value = serde_json::from_slice(&gunzip(&gzipped)).unwrap();
    assert_eq!(back, expected);
    assert!(
        gzipped.len() * 10 < plain.len() * 6,
        "gzip: {} of {} bytes",
        gzipped.len(),
        plain.len()
    );

    let (encoding, zstded) = send(Some("zstd")).await;
    assert_eq!(encoding.as_deref(), Some("zstd"));
    let back: Value = serde_json::from_slice(&zstd::decode_all(&zstded[..]).unwrap()).unwrap();
    assert_eq!(back, expected);
    assert!(
        zstded.len() * 10 < plain.len() * 6,
        "zstd: {} of {} bytes",
        zstded.len(),
        plain.len()
    );

    // An encoding the gateway does not write is not an error: the answer comes as it is.
    let (encoding, same) = send(Some("br")).await;
    assert_eq!(encoding, None);
    assert_eq!(serde_json::from_slice::<Value>(&same).unwrap(), expected);

    // Small answers are not worth compressing.
    let res = http
        .get(format!("{}/sync/health", gw.url))
        .header("accept-encoding", "gzip, zstd")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("content-encoding").is_none());
    let health: Value = res.json().await.unwrap();
    assert_eq!(health["status"], "healthy", "{health}");

    // The test's usual client asks for compression and uncompresses by itself: the same answer.
    let (code, back) = gw.post("/sync/pull", &pull).await;
    assert_eq!(code, 200);
    assert_eq!(back, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_pushes_are_taken() {
    let fixture = idse_store::testing::sqlite().await;
    let gw = common::serve(fixture.store.clone(), Limits::default()).await;
    let body = serde_json::to_vec(&seven_stages()).unwrap();

    let (code, pushed) = push_encoded(&gw, "gzip", gzip(&body)).await;
    assert_eq!(code, 200, "{pushed}");
    let id = pushed["project_id"].clone();
    let (_, pulled) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(pulled["artifacts"], seven_stages()["artifacts"]);

    // zstd, and gzip written as two members one after the other (`gzip -c a b`).
    let next = json!({"project_name": "wire", "project_id": id, "artifacts": {"spec_md": "# Spec\n\nzstd\n"}});
    let (code, answer) = push_encoded(
        &gw,
        "zstd",
        zstd::encode_all(&serde_json::to_vec(&next).unwrap()[..], 3).unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{answer}");
    let next = serde_json::to_vec(
        &json!({"project_name": "wire", "project_id": id, "artifacts": {"plan_md": "# Plan\n\nmembers\n"}}),
    )
    .unwrap();
    let (head, tail) = next.split_at(next.len() / 2);
    let (code, answer) = push_encoded(&gw, "x-gzip", [gzip(head), gzip(tail)].concat()).await;
    assert_eq!(code, 200, "{answer}");

    let (_, pulled) = gw.post("/sync/pull", &json!({"project_id": id})).await;
    assert_eq!(pulled["artifacts"]["spec_md"], "# Spec\n\nzstd\n");
    assert_eq!(pulled["artifacts"]["plan_md"], "# Plan\n\nmembers\n");
    assert_eq!(pulled["revision"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_push_is_held_to_the_limit_uncompressed() {
    let fixture = idse_store::testing::sqlite().await;
    let limits = Limits {
        max_body_bytes: 64 * 1024,
        max_artifact_bytes: 32 * 1024,
    };
    let gw = common::serve(fixture.store.clone(), limits).await;
    let small =
        serde_json::to_vec(&json!({"project_name": "bomb", "artifacts": {"spec_md": "fits"}}))
            .unwrap();
    // A body of 1 KiB on the wire that would take 8 MiB in memory.
    let bomb = {
        let mut body = br#"{"project_name":"bomb","artifacts":{"spec_md":""#.to_vec();
        body.resize(8 << 20, b'a');
        body.extend_from_slice(br#""}}"#);
        body
    };
    let gzip_bomb = gzip(&bomb);
    assert!(gzip_bomb.len() < 64 * 1024);
    let zstd_bomb = zstd::encode_all(&bomb[..], 3).unwrap();
    // A zstd frame that asks for a 128 MiB window, written without its size.
    let wide_window = {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(27).unwrap();
        encoder.write_all(&small).unwrap();
        encoder.finish().unwrap()
    };
    let truncated = {
        let whole = gzip(&small);
        whole[..whole.len() - 6].to_vec()
    };

    for (encoding, body, status, code, named) in [
        ("gzip", gzip_bomb, 413, "payload_too_large", "Uncompressed"),
        ("zstd", zstd_bomb, 413, "payload_too_large", "Uncompressed"),
        ("zstd", wide_window, 400, "invalid_compression", "zstd"),
        ("gzip", truncated, 400, "invalid_compression", "gzip"),
        ("gzip", small.clone(), 400, "invalid_compression", "gzip"),
        ("br", small.clone(), 415, "unsupported_encoding", "br"),
        (
            "gzip, zstd",
            gzip(&small),
            415,
            "unsupported_encoding",
            "gzip, zstd",
        ),
    ] {
        let (got, answer) = push_encoded(&gw, encoding, body).await;
        assert_eq!(
            (got, answer["error"].as_str().unwrap_or("")),
            (status, code),
            "{encoding}: {answer}"
        );
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(named), "{encoding}: {answer}");
        assert!(message.ends_with('.'), "{answer}");
        assert!(
            answer["detail"].as_str().unwrap().ends_with('.'),
            "{answer}"
        );
    }
    let (_, list) = gw.get("/sync/projects").await;
    assert_eq!(list["count"], 0, "nothing refused was written: {list}");

    // The same body, sent whole, is taken.
    let (code, answer) = push_encoded(&gw, "gzip", gzip(&small)).await;
    assert_eq!(code, 200, "{answer}");
}
