//! Test support: a certificate authority of the test's own and a certificate it signed for
//! this machine, for HTTPS tests of the gateway and its clients.

use std::path::{Path, PathBuf};

/// PEM files of a certificate for `localhost` and `127.0.0.1`, and its authority.
#[derive(Debug)]
pub struct TestCertificate {
    /// The authority's certificate, for a client to trust.
    pub authority_pem: String,
    /// Where the authority's certificate was written (for `SSL_CERT_FILE`).
    pub authority: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a new authority and certificate and writes them into `dir`.
///
/// # Panics
/// When the key cannot be made or a file cannot be written: this is test support.
pub fn certificate_files(dir: &Path) -> TestCertificate {
    certificate_files_ending(dir, (4096, 1, 1))
}

/// As [`certificate_files`], with a certificate valid until the start of `(year, month, day)`
/// (UTC).
///
/// # Panics
/// When the key cannot be made or a file cannot be written: this is test support.
#[allow(clippy::unwrap_used)]
pub fn certificate_files_ending(dir: &Path, (year, month, day): (i32, u8, u8)) -> TestCertificate {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "IDSE test authority");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let files = TestCertificate {
        authority_pem: ca_cert.pem(),
        authority: dir.join("authority.pem"),
        cert: dir.join("gateway.pem"),
        key: dir.join("gateway.key"),
    };
    std::fs::write(&files.authority, &files.authority_pem).unwrap();
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// A client that trusts only the authority `pem` and opens a new connection for every request,
/// so each request meets the certificate served at that moment.
///
/// # Panics
/// When `pem` is not a certificate: this is test support.
#[allow(clippy::unwrap_used)]
pub fn trusting(pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}
