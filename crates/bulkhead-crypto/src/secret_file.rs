//! The one check every file holding a secret passes before it is read: the master key, the admin
//! token, the TLS private key. A secret that anyone on the host can read protects nothing.

use crate::CryptoError;
use std::fs::File;
use std::path::Path;

/// Opens a file that holds a secret, refusing one that group or others can read (any of the mode bits
/// `0o077`, on Unix). `what` names the secret in errors ("master key", "TLS private key"); errors carry
/// the path and the reason, never the content.
///
/// The mode is read from the opened file, so the file checked is the file the caller reads.
pub fn open_secret_file(path: &Path, what: &'static str) -> Result<File, CryptoError> {
    let unavailable = |e: std::io::Error| CryptoError::SecretFileUnavailable {
        what,
        path: path.display().to_string(),
        reason: e.kind().to_string(),
    };
    let file = File::open(path).map_err(unavailable)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().map_err(unavailable)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::SecretFilePermissions { what, path: path.display().to_string(), mode });
        }
    }
    Ok(file)
}
