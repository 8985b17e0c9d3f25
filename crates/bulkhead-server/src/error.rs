//! `ServerError`, the one error type of the server library: what can go wrong reading the settings
//! of `bulkhead serve` and the secrets it is given, loading TLS, connecting as a client, and serving.
//! Messages name files, settings and reasons, never a secret's content. (Errors of calls are
//! `tonic::Status`, made in `status.rs`.)

use std::io;
use std::path::PathBuf;

/// Everything the server library's own functions can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A setting holds a value outside its meaning (a zero limit, a request memory budget smaller
    /// than the largest message, a metrics address that is not one, a log filter that does not
    /// parse, half of the TLS pair). Classified apart from file problems because the fix is to the
    /// value; nothing has been started.
    #[error("{0}")]
    Setting(String),

    /// The config file could not be read. The operator's to fix (its path or permissions); reported
    /// with the path and the kind of failure.
    #[error("cannot read the config file {}: {kind}", path.display())]
    ConfigUnreadable { path: PathBuf, kind: io::ErrorKind },

    /// A config file's text is not TOML, or holds an unknown key or a value of the wrong type; the
    /// parser's message names the key.
    #[error(transparent)]
    ConfigSyntax(#[from] toml::de::Error),

    /// A config file was read but is not a valid config; `error` says why (a syntax error or a
    /// setting) and the message names the file too.
    #[error("config file {}: {error}", path.display())]
    ConfigFile { path: PathBuf, error: Box<ServerError> },

    /// The effective settings could not be written as TOML (`--print-config`). Not expected: every
    /// setting has a TOML form, so this is a fault of the code.
    #[error("the settings cannot be written as TOML: {0}")]
    ConfigOutput(toml::ser::Error),

    /// An admin token is too short or holds characters that a header cannot carry: the operator's
    /// to replace with a longer random one.
    #[error("an admin token must be at least 32 visible ASCII characters")]
    AdminTokenInvalid,

    /// The approver token is the admin token: the second credential of break-glass grants must be
    /// a different secret, or the requester could approve its own grant.
    #[error("the approver token must differ from the admin token (it is the second credential)")]
    ApproverIsAdmin,

    /// The approver token was given to a server that is already serving (a fault of the code).
    #[error("the approver token is set before the server starts")]
    ApproverAfterStart,

    /// The admin token file holds bytes that are not UTF-8 text.
    #[error("the admin token file {} is not text", path.display())]
    AdminTokenNotText { path: PathBuf },

    /// A file holding a secret (the admin token, the TLS private key) failed the crypto crate's check
    /// or could not be read; its own message says which (others may read it, missing, too large).
    #[error(transparent)]
    SecretFile(#[from] bulkhead_crypto::CryptoError),

    /// A TLS file that is not a secret (`what`: the certificate chain, or the CA a client trusts)
    /// could not be read.
    #[error("cannot read the TLS {what} file {}: {kind}", path.display())]
    TlsFileUnreadable { what: &'static str, path: PathBuf, kind: io::ErrorKind },

    /// A TLS file holds no PEM block of the kind it should (`what`: certificate or private key):
    /// most often the two files were given the wrong way round.
    #[error("the TLS {what} file {} holds no PEM {what}", path.display())]
    TlsNoPem { what: &'static str, path: PathBuf },

    /// What a client was told to trust holds no PEM certificate.
    #[error("no PEM certificate in it")]
    TlsNoCaCertificate,

    /// The file a client was told to trust holds no PEM certificate.
    #[error("the TLS CA file {}: no PEM certificate in it", path.display())]
    TlsCaFileEmpty { path: PathBuf },

    /// The server's certificate and private key are PEM but cannot serve together (the key does not
    /// parse, or is not the certificate's); `reason` is rustls's, in operator words. Found at load,
    /// so that a start fails here instead of every handshake later.
    #[error(
        "the TLS certificate {} and private key {} cannot be used: {reason}",
        cert.display(),
        key.display()
    )]
    TlsUnusable { cert: PathBuf, key: PathBuf, reason: String },

    /// A client's TLS settings were refused by the transport before any connection.
    #[error("TLS settings for {address}: {reason}")]
    TlsSettings { address: String, reason: String },

    /// An address a client cannot use: its scheme does not match the choice of TLS, an unknown
    /// scheme, or not an address at all. The message says which and what to write instead.
    #[error("{0}")]
    Address(String),

    /// A client could not reach the server in plaintext; `reason` is the innermost cause, in
    /// operator words (a TLS server hangs up on a plaintext client: see `client::describe_status`).
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },

    /// A client could not reach the server or complete the TLS handshake with it (an untrusted or
    /// misnamed certificate, a plaintext server); `reason` says which, in operator words.
    #[error("TLS connection to {address} failed: {reason}")]
    TlsConnect { address: String, reason: String },

    /// A credential holds characters that an HTTP header cannot carry; nothing was sent.
    #[error("the credential is not a valid header value")]
    CredentialHeader,

    /// The transport failed to take the server's TLS configuration or to serve (accepting
    /// connections, HTTP/2): a failure of the host or the process, not of a request.
    #[error("the gRPC transport failed")]
    Transport(#[source] tonic::transport::Error),

    /// gRPC reflection could not be built from the compiled descriptor set: a fault of the build.
    #[error("gRPC reflection could not be set up")]
    Reflection(#[source] tonic_reflection::server::Error),
}
