//! The gateway the app runs itself when no team gateway is set: SQLite in the app's home,
//! open mode on loopback only, on a free port.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use idse_gateway::{AuthMode, Limits};
use tokio::sync::oneshot;

/// A running embedded gateway; dropping it stops it.
#[derive(Debug)]
pub struct Embedded {
    pub url: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens (or creates) `home/gateway.sqlite3` and serves it on 127.0.0.1.
pub async fn start(home: &Path) -> anyhow::Result<Embedded> {
    let database = home.join("gateway.sqlite3");
    // One person's desk: two readers are plenty, and each SQLite connection holds its own cache.
    let options = idse_store::OpenOptions {
        max_connections: 2,
        ..idse_store::OpenOptions::default()
    };
    let store = idse_store::open(&database.to_string_lossy(), &options)
        .await
        .with_context(|| {
            format!(
                "while opening the embedded gateway's database {}",
                database.display()
            )
        })?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .context("while opening a port on 127.0.0.1 for the embedded gateway")?;
    let addr = listener
        .local_addr()
        .context("while reading the embedded gateway's port")?;
    let app = idse_gateway::app(Arc::from(store), Limits::default(), AuthMode::Open);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let served = axum_serve(listener, app, stopped).await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the embedded gateway stopped");
        }
    });
    tracing::info!(%addr, "embedded gateway listening");
    Ok(Embedded {
        url: format!("http://{addr}"),
        stop: Some(stop),
    })
}

async fn axum_serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await
}
