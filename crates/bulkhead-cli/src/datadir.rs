//! Who has a data directory open. RocksDB allows one process per database and says so with an
//! engine error about its `LOCK` file, which tells an operator nothing about what to do. So every
//! command that opens a data directory (`serve` and the embedded commands) first takes an exclusive
//! lock of its own on `bulkhead.lock` in it, holds it until it exits, and writes its process id and
//! command there; a second one is refused with a message that names the holder and what to do
//! instead. The file holds no secret and no tenant data.
//!
//! The lock is `flock`-style (`File::try_lock`), which the kernel drops when the process dies,
//! however it dies: a stale file never blocks anyone. A process that opened the directory without
//! this lock (an older binary, a program on the library) is still caught by RocksDB; its error is
//! recognised by [`explain_open_error`] and given the same advice.

use anyhow::{Context, Result};
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The lock file's name in the data directory.
pub(crate) const LOCK_FILE: &str = "bulkhead.lock";

/// The lock on a data directory, released when dropped (or when the process exits).
#[derive(Debug)]
pub(crate) struct DataDirLock {
    _file: File,
}

/// Takes the lock on `data_dir` (created if missing) for `command` (`bulkhead serve`, ...), or
/// says who holds it.
pub(crate) fn lock(data_dir: &Path, command: &str) -> Result<DataDirLock> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(LOCK_FILE);
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut holder = String::new();
            // Best effort: the holder wrote one short line.
            let _ = (&file).take(200).read_to_string(&mut holder);
            let holder = holder.trim();
            let holder = if holder.is_empty() { "another process".to_owned() } else { holder.to_owned() };
            return Err(anyhow::anyhow!(held(data_dir, &holder)));
        }
        Err(TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    writeln!(file, "process {} ({command})", std::process::id())?;
    Ok(DataDirLock { _file: file })
}

/// The refusal when `holder` has `data_dir` open.
fn held(data_dir: &Path, holder: &str) -> String {
    format!(
        "the data directory {} is in use by {holder}: one process at a time may open it. If a server \
         runs on it, use `bulkhead admin ...` and `bulkhead client ...` against that server instead \
         of the embedded commands; otherwise stop that process first",
        data_dir.display()
    )
}

/// `error`, from opening the database in `data_dir`, with the advice of [`lock`] if it is RocksDB's
/// refusal of a directory another process holds.
pub(crate) fn explain_open_error(data_dir: &Path, error: impl Into<anyhow::Error>) -> anyhow::Error {
    let error = error.into();
    if is_engine_lock_error(&format!("{error:#}")) {
        return error.context(held(data_dir, "another process (one that does not take bulkhead.lock)"));
    }
    error.context(format!("opening {}", data_dir.display()))
}

/// Whether an engine error is RocksDB's refusal to lock its `LOCK` file: "While lock file:
/// .../LOCK: Resource temporarily unavailable" (another process), or "lock hold by current
/// process" (this one).
fn is_engine_lock_error(message: &str) -> bool {
    message.contains("/LOCK") && (message.contains("lock file") || message.contains("lock hold"))
}

#[cfg(test)]
mod tests {
    use super::{is_engine_lock_error, lock};

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_the_first_released_on_drop() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = lock(&data, "bulkhead serve").expect("first");
        let refused = format!("{:#}", lock(&data, "bulkhead tenant").expect_err("held"));
        let expected = format!("is in use by process {} (bulkhead serve)", std::process::id());
        assert!(refused.contains(&expected), "{refused}");
        assert!(refused.contains("bulkhead admin"), "{refused}");
        drop(first);
        lock(&data, "bulkhead tenant").expect("free again");
    }

    #[test]
    fn rocksdb_lock_errors_are_recognised() {
        let held = "storage engine error: IO error: While lock file: /srv/data/db/LOCK: Resource \
                    temporarily unavailable";
        assert!(is_engine_lock_error(held));
        assert!(is_engine_lock_error(
            "IO error: lock hold by current process, acquire time 1 acquiring \
                                      thread 2: /srv/data/db/LOCK: No locks available"
        ));
        assert!(!is_engine_lock_error("storage engine error: IO error: No space left on device"));
        let explained =
            format!("{:#}", super::explain_open_error("/srv/data".as_ref(), anyhow::anyhow!(held)));
        assert!(explained.starts_with("the data directory /srv/data is in use by another process"));
        assert!(explained.ends_with(held), "{explained}");
    }
}
