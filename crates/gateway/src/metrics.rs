//! `GET /metrics` in Prometheus text format: requests by route and status (those that could not
//! be read as HTTP under the route `unreadable`), push latency, refused pushes (conflicts) and
//! live event subscribers.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use chrono::{DateTime, Utc};

use crate::AppState;

/// Upper bounds of the push latency buckets, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    push_buckets: [AtomicU64; BUCKETS.len()],
    push_count: AtomicU64,
    push_micros: AtomicU64,
    conflicts: AtomicU64,
}

impl Metrics {
    fn observe(&self, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_owned(), status)).or_default() += 1;
        }
        if route == "/sync/push" {
            if status == 409 {
                self.conflicts.fetch_add(1, Ordering::Relaxed);
            }
            let secs = elapsed.as_secs_f64();
            for (bucket, bound) in self.push_buckets.iter().zip(BUCKETS) {
                if secs <= bound {
                    bucket.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.push_count.fetch_add(1, Ordering::Relaxed);
            self.push_micros
                .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        }
    }

    /// The exposition text; `subscribers` is the number of open event streams,
    /// `certificate_end` when the served HTTPS certificate ends (none on plain HTTP).
    pub fn render(&self, subscribers: usize, certificate_end: Option<DateTime<Utc>>) -> String {
        let mut out = String::new();
        out.push_str("# HELP idse_http_requests_total Requests by route and status.\n");
        out.push_str("# TYPE idse_http_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                out.push_str(&format!(
                    "idse_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}\n"
                ));
            }
        }
        // Requests that could not be read as HTTP, so have no route (see `unreadable`).
        for (status, n) in crate::unreadable::answered().filter(|&(_, n)| n > 0) {
            out.push_str(&format!(
                "idse_http_requests_total{{route=\"unreadable\",status=\"{status}\"}} {n}\n"
            ));
        }
        out.push_str("# HELP idse_push_duration_seconds Time to answer a push.\n");
        out.push_str("# TYPE idse_push_duration_seconds histogram\n");
        for (bucket, bound) in self.push_buckets.iter().zip(BUCKETS) {
            out.push_str(&format!(
                "idse_push_duration_seconds_bucket{{le=\"{bound}\"}} {}\n",
                bucket.load(Ordering::Relaxed)
            ));
        }
        let count = self.push_count.load(Ordering::Relaxed);
        out.push_str(&format!(
            "idse_push_duration_seconds_bucket{{le=\"+Inf\"}} {count}\n"
        ));
        out.push_str(&format!(
            "idse_push_duration_seconds_sum {}\n",
            self.push_micros.load(Ordering::Relaxed) as f64 / 1e6
        ));
        out.push_str(&format!("idse_push_duration_seconds_count {count}\n"));
        out.push_str(
            "# HELP idse_push_conflicts_total Pushes refused because a stage changed remotely.\n",
        );
        out.push_str("# TYPE idse_push_conflicts_total counter\n");
        out.push_str(&format!(
            "idse_push_conflicts_total {}\n",
            self.conflicts.load(Ordering::Relaxed)
        ));
        out.push_str("# HELP idse_event_subscribers Open /sync/events streams.\n");
        out.push_str("# TYPE idse_event_subscribers gauge\n");
        out.push_str(&format!("idse_event_subscribers {subscribers}\n"));
        if let Some(end) = certificate_end {
            // For an alert that fires well before clients start refusing the certificate.
            out.push_str(
                "# HELP idse_tls_certificate_not_after_timestamp_seconds When the served HTTPS certificate ends.\n",
            );
            out.push_str("# TYPE idse_tls_certificate_not_after_timestamp_seconds gauge\n");
            out.push_str(&format!(
                "idse_tls_certificate_not_after_timestamp_seconds {}\n",
                end.timestamp()
            ));
        }
        out
    }
}

/// Counts every request under its route pattern (never its concrete path, which holds ids).
pub(crate) async fn record(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    state
        .metrics
        .observe(&route, response.status().as_u16(), started.elapsed());
    response
}
