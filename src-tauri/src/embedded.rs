//! The gateway the app runs itself when no team gateway is set: SQLite in the app's home,
//! open mode on loopback only, on a free port.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use idse_gateway::{AuthMode, CancellationToken, Limits};

/// A running embedded gateway; dropping it stops it, its event streams included.
#[derive(Debug)]
pub struct Embedded {
    pub url: String,
    closing: CancellationToken,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.closing.cancel();
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
    let closing = CancellationToken::new();
    let app = idse_gateway::app_with(
        Arc::from(store),
        Limits::default(),
        AuthMode::Open,
        None,
        Vec::new(),
        closing.clone(),
    );
    let serving = closing.clone();
    tokio::spawn(idse_gateway::serve(listener, app, serving));
    tracing::info!(%addr, "embedded gateway listening");
    Ok(Embedded {
        url: format!("http://{addr}"),
        closing,
    })
}
