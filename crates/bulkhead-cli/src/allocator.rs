//! The server's allocator policy. glibc's `malloc` keeps up to eight arenas per core, and once a
//! large block is freed it raises its mmap and trim thresholds (up to 32 MiB and 64 MiB), so later
//! large blocks come from the heap and their memory stays with the process when freed. After an
//! index build a server held about 260 MB of such memory (debian-minilm, 61,666 × 384: 473 MB of
//! RSS against 209 MB with the settings below; docs/BENCHMARKS.md, "Server memory").
//!
//! The thresholds and the arena count can only be set from the environment before the process
//! starts (`GLIBC_TUNABLES`) or through `mallopt`, which is foreign code. So `serve` sets the
//! environment and executes itself again, once, before it starts anything; the process keeps its
//! id, arguments and open files, and carries a marker (`BULKHEAD_ALLOCATOR_TUNED`) that stops a
//! second execution. Settings already in `GLIBC_TUNABLES` are kept: with an operator's own
//! `glibc.malloc.trim_threshold` or `arena_max` there, nothing is executed again.

/// The `glibc.malloc` tunables the server runs with: one arena per core (at least two) and a fixed
/// trim threshold of 1 MiB (which also keeps the mmap threshold at its default, 128 KiB, so large
/// blocks are returned when freed). In this order: measured with glibc 2.36, the other order left
/// the arena count at its default (RSS after indexing 259 MB against 209 MB).
pub fn tunables(cores: usize) -> String {
    format!("glibc.malloc.arena_max={}:glibc.malloc.trim_threshold={}", cores.max(2), 1 << 20)
}

/// `GLIBC_TUNABLES` with the server's malloc settings added, or `None` if it already sets the trim
/// threshold or the arena count (the operator's, or those of an earlier execution).
pub fn with_server_tunables(current: Option<&str>, cores: usize) -> Option<String> {
    let current = current.unwrap_or_default();
    let set = |name: &str| current.split(':').any(|entry| entry.split('=').next() == Some(name));
    if set("glibc.malloc.trim_threshold") || set("glibc.malloc.arena_max") {
        return None;
    }
    Some(match current {
        "" => tunables(cores),
        other => format!("{other}:{}", tunables(cores)),
    })
}

/// Executes the running binary again with the server's tunables in `GLIBC_TUNABLES`, unless they
/// are set already; returns only if it did not (set already, or the execution failed, with why).
/// Call it before any thread starts. Linux with glibc only; elsewhere it does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn reexec_with_server_tunables() -> Option<std::io::Error> {
    use std::os::unix::process::CommandExt;
    // Once at most, whatever glibc makes of the variable (it rewrites it in place as it parses it).
    if std::env::var_os(REEXECUTED).is_some() {
        return None;
    }
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    let tunables = with_server_tunables(current.as_deref(), cores)?;
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "bulkhead".into());
    // The running image itself, even if its file was replaced since it started.
    let mut command = std::process::Command::new("/proc/self/exe");
    command.arg0(argv0).args(args).env("GLIBC_TUNABLES", tunables).env(REEXECUTED, "1");
    Some(command.exec())
}

/// Set in the environment of the execution that carries the tunables.
pub const REEXECUTED: &str = "BULKHEAD_ALLOCATOR_TUNED";

/// Does nothing: only glibc needs it.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn reexec_with_server_tunables() -> Option<std::io::Error> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_servers_tunables_are_added_once_and_never_over_the_operators() {
        let ours = "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=1048576";
        assert_eq!(with_server_tunables(None, 2).as_deref(), Some(ours));
        assert_eq!(with_server_tunables(Some(""), 1).as_deref(), Some(ours), "at least two arenas");
        assert_eq!(
            with_server_tunables(Some("glibc.pthread.rseq=0"), 8).as_deref(),
            Some("glibc.pthread.rseq=0:glibc.malloc.arena_max=8:glibc.malloc.trim_threshold=1048576")
        );
        // Already there (a second execution), or the operator's own: nothing changes.
        assert_eq!(with_server_tunables(Some(ours), 2), None);
        assert_eq!(with_server_tunables(Some("glibc.malloc.arena_max=16"), 2), None);
        assert_eq!(with_server_tunables(Some("x=1:glibc.malloc.trim_threshold=0"), 2), None);
        // A name that only starts like ours is not ours.
        assert!(with_server_tunables(Some("glibc.malloc.arena_max_x=1"), 2).is_some());
    }
}
