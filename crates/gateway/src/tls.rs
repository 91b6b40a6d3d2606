//! The gateway's own HTTPS: the certificate and key it serves, read again when their files
//! change, so a renewed certificate (Let's Encrypt renews every 60 to 90 days) is served without
//! a restart; and opening TLS on each new connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// How often the files are looked at by default: two `stat` calls, so nearly free.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);

/// How long before its end a certificate is reported as due for renewal.
const RENEWAL_DUE: chrono::TimeDelta = chrono::TimeDelta::days(14);

/// How often a certificate that is due or past its end is reported again.
const REPORT_AGAIN: Duration = Duration::from_secs(24 * 60 * 60);

/// The certificate a gateway serves HTTPS with, for teams without a TLS proxy in front.
///
/// New connections get the certificate last read; connections already open keep theirs. A
/// renewed file that cannot be used is reported, naming it, and the previous certificate stays
/// in service.
#[derive(Clone)]
pub struct Tls {
    shared: Arc<Files>,
    /// How often the served loop looks for changed files; `None` only on [`Tls::reload`].
    check: Option<Duration>,
}

struct Files {
    cert: PathBuf,
    key: PathBuf,
    loaded: RwLock<Loaded>,
}

struct Loaded {
    acceptor: TlsAcceptor,
    not_after: Option<DateTime<Utc>>,
    /// The files as they were when last read, also after a failed read: a broken file is
    /// reported once, not at every check, and read again when it changes again.
    seen: Stamp,
}

/// Enough of two files' metadata to see that either was rewritten or replaced (a renewal
/// tool may write in place or swap a symbolic link; the metadata is that of the target).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([Option<(SystemTime, u64, u64)>; 2]);

impl Stamp {
    fn of(cert: &Path, key: &Path) -> Self {
        Self([file_stamp(cert), file_stamp(key)])
    }
}

fn file_stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.shared.cert)
            .field("key", &self.shared.key)
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

/// Why a certificate or key could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the certificate file {path}: {reason}")]
    Certificate { path: String, reason: String },
    #[error("cannot read the private key file {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the key in {key} does not fit the certificate in {cert}: {reason}")]
    Mismatch {
        cert: String,
        key: String,
        reason: String,
    },
}

impl Tls {
    /// A certificate chain (PEM, the server's first) and its private key (PEM: PKCS#8, PKCS#1 or
    /// SEC1), as Let's Encrypt and most authorities hand them out. The files are looked at
    /// every [`CHECK_EVERY`] while served; see [`Tls::checked_every`].
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let seen = Stamp::of(cert, key);
        let (acceptor, not_after) = load(cert, key)?;
        Ok(Self {
            shared: Arc::new(Files {
                cert: cert.to_owned(),
                key: key.to_owned(),
                loaded: RwLock::new(Loaded {
                    acceptor,
                    not_after,
                    seen,
                }),
            }),
            check: Some(CHECK_EVERY),
        })
    }

    /// How often the files are looked at while served; `None` reads them only on
    /// [`Tls::reload`] (the binary calls it on SIGHUP).
    #[must_use]
    pub fn checked_every(mut self, every: Option<Duration>) -> Self {
        self.check = every.filter(|d| !d.is_zero());
        self
    }

    /// When the served certificate ends, if it could be read.
    pub fn not_after(&self) -> Option<DateTime<Utc>> {
        self.loaded().not_after
    }

    /// Reads both files again; on success new connections get the new certificate. On failure
    /// the previous one stays in service.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.reload_seen(Stamp::of(&self.shared.cert, &self.shared.key))
    }

    /// As [`Tls::reload`], with the files' stamp already taken (before reading them).
    fn reload_seen(&self, seen: Stamp) -> Result<(), TlsError> {
        let loaded = load(&self.shared.cert, &self.shared.key);
        let mut current = self
            .shared
            .loaded
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        current.seen = seen;
        let (acceptor, not_after) = loaded?;
        current.acceptor = acceptor;
        current.not_after = not_after;
        Ok(())
    }

    /// As [`Tls::reload`] if either file changed since it was last read; `None` if neither did.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let now = Stamp::of(&self.shared.cert, &self.shared.key);
        // The read guard ends with this statement, before `reload` takes the lock to write.
        let changed = now != self.loaded().seen;
        changed.then(|| self.reload_seen(now))
    }

    /// A sentence for the operator when the served certificate has ended or ends within 14 days
    /// of `now`.
    pub fn renewal_warning(&self, now: DateTime<Utc>) -> Option<String> {
        let end = self.not_after()?;
        let file = self.shared.cert.display();
        let day = end.format("%Y-%m-%d %H:%M UTC");
        if end <= now {
            Some(format!(
                "the certificate in {file} ended on {day}: clients refuse it; renew it (the \
                 gateway reads the new file by itself)"
            ))
        } else if end - now <= RENEWAL_DUE {
            Some(format!(
                "the certificate in {file} ends on {day}, in {} days; renew it (the gateway \
                 reads the new file by itself)",
                (end - now).num_days()
            ))
        } else {
            None
        }
    }

    /// Reads both files again and logs what came of it (for SIGHUP).
    pub fn reload_and_report(&self, now: DateTime<Utc>) {
        self.report(self.reload(), now);
    }

    fn report(&self, reloaded: Result<(), TlsError>, now: DateTime<Utc>) {
        match reloaded {
            Ok(()) => {
                let until = self.not_after().map_or_else(String::new, |end| {
                    end.format(" (valid until %Y-%m-%d %H:%M UTC)").to_string()
                });
                tracing::info!(
                    "read the certificate in {} again{until}; new connections get it",
                    self.shared.cert.display()
                );
                if let Some(warning) = self.renewal_warning(now) {
                    tracing::warn!("{warning}");
                }
            }
            Err(e) => tracing::error!("{e}; the previous certificate stays in service"),
        }
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.loaded().acceptor.clone()
    }

    fn loaded(&self) -> std::sync::RwLockReadGuard<'_, Loaded> {
        self.shared
            .loaded
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Looks at the files every `tls.check` until `closing`, reads them again when they changed,
/// and reports a certificate due for renewal once a day.
pub(crate) async fn watch(tls: Tls, closing: CancellationToken) {
    let Some(every) = tls.check else {
        return;
    };
    let mut reported = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = closing.cancelled() => return,
        }
        let looked = tls.clone();
        // Reading files blocks; the runtime's threads serve requests.
        let Ok(changed) = tokio::task::spawn_blocking(move || looked.reload_if_changed()).await
        else {
            continue;
        };
        let now = Utc::now();
        if let Some(reloaded) = changed {
            tls.report(reloaded, now);
            reported = tokio::time::Instant::now();
        } else if reported.elapsed() >= REPORT_AGAIN {
            if let Some(warning) = tls.renewal_warning(now) {
                tracing::warn!("{warning}");
            }
            reported = tokio::time::Instant::now();
        }
    }
}

/// A connection to the HTTPS port, as the gateway accepted it.
pub(crate) type Accepted = std::pin::Pin<Box<tokio_io_timeout::TimeoutStream<TcpStream>>>;

/// Opens TLS on a new connection: `None` when the client sent plain HTTP (answered here with
/// `400 https_required`, not a closed connection it cannot explain), closed, or did not finish
/// its handshake within `patience`. The handshake runs in the connection's task, so a slow
/// client holds up no one.
pub(crate) async fn open(
    tls: &Tls,
    tcp: tokio_io_timeout::TimeoutStream<TcpStream>,
    http: &hyper::server::conn::http1::Builder,
    patience: Duration,
) -> Option<tokio_rustls::server::TlsStream<Accepted>> {
    // One deadline for the first byte and the handshake together.
    let deadline = tokio::time::Instant::now() + patience;
    match tokio::time::timeout_at(deadline, starts_tls(tcp.get_ref())).await {
        Ok(Some(true)) => {}
        Ok(Some(false)) => {
            let answer = hyper::service::service_fn(|_| async {
                Ok::<_, std::convert::Infallible>(https_required())
            });
            let mut once = http.clone();
            once.keep_alive(false);
            let io =
                hyper_util::rt::TokioIo::new(crate::unreadable::Unreadable::new(Box::pin(tcp)));
            if let Err(e) = once.serve_connection(io, answer).await {
                tracing::debug!(error = %e, "a plain HTTP client on the HTTPS port");
            }
            return None;
        }
        Ok(None) => return None,
        Err(_) => {
            tracing::debug!("a TLS client said nothing in time");
            return None;
        }
    }
    match tokio::time::timeout_at(deadline, tls.acceptor().accept(Box::pin(tcp))).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "a TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("a TLS handshake did not finish in time");
            None
        }
    }
}

/// Whether the client's first byte opens a TLS handshake record (`None`: it closed first).
async fn starts_tls(tcp: &TcpStream) -> Option<bool> {
    let mut first = [0u8; 1];
    match tcp.peek(&mut first).await {
        Ok(1) => Some(first[0] == 0x16),
        _ => None,
    }
}

/// The answer to plain HTTP on the HTTPS port.
fn https_required() -> axum::response::Response {
    use axum::response::IntoResponse;
    crate::ApiError::bad_request(
        "https_required",
        "This gateway speaks HTTPS: use https:// in its address.",
        "The request came as plain HTTP to a port that serves HTTPS (--tls-cert).",
    )
    .into_response()
}

fn load(cert: &Path, key: &Path) -> Result<(TlsAcceptor, Option<DateTime<Utc>>), TlsError> {
    use tokio_rustls::rustls::pki_types::pem::{self, PemObject};
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio_rustls::rustls::{crypto, ServerConfig};

    let (cert_name, key_name) = (cert.display().to_string(), key.display().to_string());
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Certificate {
            path: cert_name.clone(),
            reason: e.to_string(),
        })?;
    let Some(served) = chain.first() else {
        return Err(TlsError::Certificate {
            path: cert_name,
            reason: "it holds no PEM certificate".into(),
        });
    };
    let not_after = not_after(served);
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key_name.clone(),
        reason: match e {
            pem::Error::NoItemsFound => "it holds no PEM private key".into(),
            e => e.to_string(),
        },
    })?;
    let mismatch = |e: tokio_rustls::rustls::Error| TlsError::Mismatch {
        cert: cert_name.clone(),
        key: key_name.clone(),
        reason: e.to_string(),
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(mismatch)?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(mismatch)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), not_after))
}

/// The end of a certificate's validity; `None` if it cannot be parsed (rustls checks the rest).
fn not_after(der: &[u8]) -> Option<DateTime<Utc>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
    DateTime::from_timestamp(parsed.validity().not_after.timestamp(), 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Instant;

    use chrono::TimeZone;

    use super::*;
    use crate::testing::{certificate_files, certificate_files_ending, trusting};
    use crate::{app, serve_with, AuthMode, Limits, PATIENCE};

    async fn health(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
        let res = client.get(format!("{url}/sync/health")).send().await?;
        Ok(res.status().as_u16())
    }

    #[tokio::test]
    async fn a_renewed_certificate_is_served_to_new_connections_without_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = certificate_files(dir.path());
        let tls = Tls::from_pem_files(&first.cert, &first.key)
            .unwrap()
            .checked_every(Some(Duration::from_millis(50)));
        assert!(tls.reload_if_changed().is_none(), "nothing changed yet");

        let fixture = idse_store::testing::sqlite().await;
        let app = app(fixture.store.clone(), Limits::default(), AuthMode::Open);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let closing = CancellationToken::new();
        let server = tokio::spawn(serve_with(
            listener,
            app,
            closing.clone(),
            PATIENCE,
            Some(tls.clone()),
        ));
        let old = trusting(&first.authority_pem);
        assert_eq!(health(&old, &url).await.unwrap(), 200);

        let renewed = tempfile::tempdir().unwrap();
        let next = certificate_files(renewed.path());
        let new = trusting(&next.authority_pem);
        // Moved into place as renewal tools do, the key a moment after the certificate: checks
        // meanwhile see the new certificate with the old key, and keep serving the old pair.
        std::fs::rename(&next.cert, &first.cert).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(health(&old, &url).await.unwrap(), 200);
        std::fs::rename(&next.key, &first.key).unwrap();

        let began = Instant::now();
        while health(&new, &url).await.is_err() {
            assert!(
                began.elapsed() < Duration::from_secs(5),
                "the renewed certificate was not served after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(health(&new, &url).await.unwrap(), 200);
        let refused = health(&old, &url).await.unwrap_err();
        assert!(
            // The old authority did not sign the renewed certificate.
            format!("{refused:?}").contains("InvalidCertificate"),
            "{refused:?}"
        );

        // A renewal that leaves a key that cannot be used: the last good certificate stays.
        std::fs::write(&first.key, "not a key\n").unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(health(&new, &url).await.unwrap(), 200);
        match tls.reload() {
            Err(TlsError::Key { path, reason }) => {
                assert_eq!(path, first.key.display().to_string());
                assert_eq!(reason, "it holds no PEM private key");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(health(&new, &url).await.unwrap(), 200);

        closing.cancel();
        tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_certificate_near_or_past_its_end_is_reported_with_its_file_and_day() {
        let dir = tempfile::tempdir().unwrap();
        let files = certificate_files_ending(dir.path(), (2030, 1, 11));
        let tls = Tls::from_pem_files(&files.cert, &files.key).unwrap();
        let day = |y: i32, m: u32, d: u32| Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        assert_eq!(tls.not_after(), Some(day(2030, 1, 11)));

        assert_eq!(tls.renewal_warning(day(2029, 12, 1)), None);
        let soon = tls.renewal_warning(day(2030, 1, 1)).unwrap();
        assert!(soon.contains("in 10 days"), "{soon}");
        assert!(soon.contains("2030-01-11"), "{soon}");
        assert!(soon.contains(&files.cert.display().to_string()), "{soon}");
        let ended = tls.renewal_warning(day(2030, 2, 1)).unwrap();
        assert!(ended.contains("ended on 2030-01-11"), "{ended}");
    }
}
