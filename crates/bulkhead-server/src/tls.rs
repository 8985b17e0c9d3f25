//! TLS for the gRPC server and its clients: rustls with the ring provider, through tonic. The server
//! loads its certificate chain and private key from PEM files ([`ServerTls`]); a client trusts one CA
//! or self-signed certificate from a PEM file ([`ClientTls`]). Both are checked when loaded, so that a
//! bad file stops the command with its reason before any connection.
//!
//! The private key is read from a file that only its owner may read (the same check as the master
//! key's, `bulkhead_crypto::open_secret_file`), into memory wiped on drop. tonic's `Identity` prints
//! the key's bytes in its `Debug`, so it lives only inside a `ServerTlsConfig` (whose `Debug` prints
//! nothing) and no type here derives `Debug`. Errors name files and reasons, never contents.

use crate::ServerError;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// The largest TLS private key file read (a PEM key is a few kilobytes; an RSA-16384 one under 16).
pub const MAX_TLS_KEY_FILE_BYTES: usize = 64 * 1024;

/// How long a client may take to complete the TLS handshake before the server drops the connection
/// (handshakes run concurrently, so a slow one holds only its own connection).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS identity: a certificate chain and its private key, checked to belong together.
pub struct ServerTls {
    config: ServerTlsConfig,
    cert: PathBuf,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls").field("cert", &self.cert).finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads a PEM certificate chain (server certificate first) and its PEM private key (PKCS#8,
    /// PKCS#1 or SEC1), refusing a key file that group or others can read, and checks that the key
    /// is the certificate's.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTls, ServerError> {
        let cert_pem = std::fs::read(cert).map_err(|e| ServerError::TlsFileUnreadable {
            what: "certificate",
            path: cert.to_owned(),
            kind: e.kind(),
        })?;
        if !contains(&cert_pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(ServerError::TlsNoPem { what: "certificate", path: cert.to_owned() });
        }
        // A regular file owned by the server's user, private, of bounded size, read into wiped memory.
        let key_pem = bulkhead_crypto::read_secret_file(key, "TLS private key", MAX_TLS_KEY_FILE_BYTES)?;
        if !contains(&key_pem, b"PRIVATE KEY-----") {
            return Err(ServerError::TlsNoPem { what: "private key", path: key.to_owned() });
        }
        let config = ServerTlsConfig::new()
            .identity(Identity::from_pem(&cert_pem, &*key_pem))
            .timeout(HANDSHAKE_TIMEOUT);
        // Build the acceptor once now: a key that does not parse or is not the certificate's stops
        // the start here, with the reason, instead of failing every handshake later.
        tonic::transport::Server::builder().tls_config(config.clone()).map_err(|e| {
            ServerError::TlsUnusable { cert: cert.to_owned(), key: key.to_owned(), reason: tls_reason(&e) }
        })?;
        Ok(ServerTls { config, cert: cert.to_owned() })
    }

    pub(crate) fn config(&self) -> ServerTlsConfig {
        self.config.clone()
    }
}

/// What a client trusts: one CA (or self-signed) certificate, and optionally the name to check the
/// server's certificate against instead of the host in the address.
#[derive(Debug, Clone)]
pub struct ClientTls {
    ca: Certificate,
    domain: Option<String>,
}

impl ClientTls {
    /// Reads the PEM certificate(s) to trust from `ca`.
    pub fn from_pem_file(ca: &Path, domain: Option<String>) -> Result<ClientTls, ServerError> {
        let pem = std::fs::read(ca).map_err(|e| ServerError::TlsFileUnreadable {
            what: "CA",
            path: ca.to_owned(),
            kind: e.kind(),
        })?;
        // The one way `from_pem` fails, said with the file's name.
        ClientTls::from_pem(&pem, domain).map_err(|_| ServerError::TlsCaFileEmpty { path: ca.to_owned() })
    }

    /// Trusts the PEM certificate(s) in `pem`.
    pub fn from_pem(pem: &[u8], domain: Option<String>) -> Result<ClientTls, ServerError> {
        if !contains(pem, b"-----BEGIN CERTIFICATE-----") {
            return Err(ServerError::TlsNoCaCertificate);
        }
        Ok(ClientTls { ca: Certificate::from_pem(pem), domain })
    }

    pub(crate) fn config(&self) -> ClientTlsConfig {
        let config = ClientTlsConfig::new().ca_certificate(self.ca.clone()).timeout(HANDSHAKE_TIMEOUT);
        match &self.domain {
            Some(domain) => config.domain_name(domain.clone()),
            None => config,
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The innermost cause of a TLS failure, in words an operator can act on. rustls errors carry no
/// key material; they are read through `io::Error` wrappers, whose `source()` skips them.
pub(crate) fn tls_reason(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    let mut last = error.to_string();
    while let Some(e) = current {
        if let Some(rustls) = as_rustls(e) {
            return describe_rustls(rustls);
        }
        last = e.to_string();
        current = e.source();
    }
    last
}

fn as_rustls<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
}

fn describe_rustls(e: &rustls::Error) -> String {
    use rustls::{CertificateError, Error, InconsistentKeys};
    match e {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => {
            "the private key does not belong to the certificate".to_owned()
        }
        // Two self-signed certificates may carry the same name; the wrong one then fails on its
        // signature rather than on its issuer. Either way the server is not the one trusted.
        Error::InvalidCertificate(CertificateError::UnknownIssuer | CertificateError::BadSignature) => {
            "the server's certificate is not signed by the trusted CA (--tls-ca)".to_owned()
        }
        Error::InvalidCertificate(CertificateError::NotValidForName)
        | Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "the server's certificate is not valid for this host name (see --tls-domain)".to_owned()
        }
        Error::InvalidMessage(_) => {
            "the peer did not speak TLS (is the server serving plaintext? then use an http:// address \
             without --tls-ca)"
                .to_owned()
        }
        other => other.to_string(),
    }
}
