//! The one check every file holding a secret passes before it is read: the master key, the admin
//! token, the TLS private key. A secret that anyone on the host can read protects nothing; a "file"
//! that is a FIFO or a device, or one of unbounded size, must not be able to stall or exhaust the
//! process that reads it.

use crate::CryptoError;
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// Opens a file that holds a secret, refusing anything but a regular file that only its owner can
/// read (none of the mode bits `0o077`, on Unix) and, where the process's user is known (Linux),
/// that this user owns. `what` names the secret in errors ("master key", "TLS private key"); errors
/// carry the path and the reason, never the content.
///
/// The path is checked before it is opened (so a FIFO is not opened, which would wait for a
/// writer), and the opened file is checked again, so the file checked is the file the caller reads.
pub fn open_secret_file(path: &Path, what: &'static str) -> Result<File, CryptoError> {
    let unavailable = |reason: String| CryptoError::SecretFileUnavailable {
        what,
        path: path.display().to_string(),
        reason,
    };
    let before = std::fs::metadata(path).map_err(|e| unavailable(e.kind().to_string()))?;
    if !before.is_file() {
        return Err(unavailable("not a regular file".into()));
    }
    let file = File::open(path).map_err(|e| unavailable(e.kind().to_string()))?;
    let metadata = file.metadata().map_err(|e| unavailable(e.kind().to_string()))?;
    if !metadata.is_file() {
        return Err(unavailable("not a regular file".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::SecretFilePermissions { what, path: path.display().to_string(), mode });
        }
        // The process's effective user owns /proc/self (Linux); elsewhere the owner is not checked.
        if let Ok(me) = std::fs::metadata("/proc/self").map(|m| m.uid())
            && metadata.uid() != me
        {
            return Err(unavailable("owned by another user than the one this process runs as".into()));
        }
    }
    Ok(file)
}

/// Reads a secret file checked by [`open_secret_file`] into memory wiped on drop, refusing one
/// larger than `max_bytes` (read at most one byte past it, into a buffer that never reallocates, so
/// no unwiped copy is left behind).
pub fn read_secret_file(
    path: &Path,
    what: &'static str,
    max_bytes: usize,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    let file = open_secret_file(path, what)?;
    let mut bytes = Zeroizing::new(Vec::with_capacity(max_bytes + 1));
    file.take(max_bytes as u64 + 1).read_to_end(&mut bytes).map_err(|e| {
        CryptoError::SecretFileUnavailable {
            what,
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        }
    })?;
    if bytes.len() > max_bytes {
        return Err(CryptoError::SecretFileUnavailable {
            what,
            path: path.display().to_string(),
            reason: format!("larger than {max_bytes} bytes"),
        });
    }
    Ok(bytes)
}

/// Writes `text` and a newline to a new file at `path`, readable and writable by its owner alone
/// (mode 0600 on Unix), and syncs it: the one way a secret (master key, admin token) is written.
/// Fails if the file exists, so no secret is ever overwritten.
///
/// # Errors
///
/// The file exists, or it cannot be created, written or synced.
pub fn write_new_secret_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}
