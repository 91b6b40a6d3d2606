//! The live link: follows the gateway's `GET /sync/events` and passes each teammate's push to
//! the window, reconnecting by itself when the gateway restarts or the settings change.

use std::time::Duration;

use idse_protocol::PushEvent;

use crate::desk::{Desk, DeskEvent};

/// How long to wait before reconnecting to a gateway that went away.
const RETRY: Duration = Duration::from_secs(1);

/// Runs for the life of the app.
pub async fn follow(desk: Desk) {
    let mut changes = desk.link_changes();
    loop {
        let gateway = desk.gateway_client();
        tokio::select! {
            () = stream(&desk, &gateway) => {
                desk.emit(DeskEvent::Link { online: false });
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
            changed = changes.changed() => if changed.is_err() { return },
        }
    }
}

/// Reads events until the stream ends.
async fn stream(desk: &Desk, gateway: &idse_core::Gateway) {
    let Ok(mut res) = gateway.events().await else {
        return;
    };
    desk.emit(DeskEvent::Link { online: true });
    let mut buf = String::new();
    while let Ok(Some(chunk)) = res.chunk().await {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(push) = parse_push(&block) {
                desk.emit(DeskEvent::Remote { push });
            }
        }
    }
}

/// The push carried by one server-sent event block, if it is one.
pub fn parse_push(block: &str) -> Option<PushEvent> {
    let mut kind = "message";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            kind = v.trim();
        } else if let Some(v) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if kind != "push" {
        return None;
    }
    serde_json::from_str(&data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_push_events_and_skips_the_rest() {
        let block = "event: push\nid: 3\ndata: {\"project_id\":\"p\",\"project_name\":\"demo\",\"session_id\":\"s\",\"stages\":[\"spec\"],\"revision\":3,\"author\":null,\"agent\":\"claude\",\"pushed_at\":\"2026-11-23T10:00:00Z\"}\n\n";
        let push = parse_push(block).unwrap();
        assert_eq!(push.project_name, "demo");
        assert_eq!(push.revision, 3);
        assert_eq!(push.stages, ["spec"]);
        assert!(parse_push(": keep-alive\n\n").is_none());
        assert!(parse_push("event: lagged\ndata: 3 events were missed\n\n").is_none());
    }
}
