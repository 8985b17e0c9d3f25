//! The release `bulkhead serve` binary as an operator runs it, for the examples that measure the
//! server from outside: a fresh data directory in a temporary folder, `127.0.0.1:0`, no metrics
//! listener, the development master key and admin token the first start writes into the data
//! directory (as `clients/python/harness.py` and `crates/bulkhead-cli/tests/it/serve.rs` start it),
//! its log drained and kept, and a clean stop (SIGTERM, exit status 0).

use anyhow::{Context, Result, bail, ensure};
use bulkhead_server::client;
use bulkhead_server::proto as pb;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long a start may take before the server is given up on (a loaded machine, a large directory).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `bulkhead` binary to run: `explicit` (a flag or `BULKHEAD_BIN`) if given, else this workspace's
/// `bulkhead-cli` built now with the release profile (nothing to do when it is up to date), with
/// the `cargo` that runs this example and its target directory.
pub fn bulkhead_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        ensure!(path.is_file(), "no bulkhead binary at {}", path.display());
        return Ok(path.to_owned());
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // `cargo run` describes this package to the example in variables that some build scripts
    // watch (ring's, CARGO_MANIFEST_DIR): inherited, they would make this build rebuild half the
    // dependency graph, and the next build of the workspace rebuild it back.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || ["CARGO_MANIFEST_DIR", "CARGO_MANIFEST_PATH", "CARGO_CRATE_NAME", "CARGO_BIN_NAME"]
                .contains(&name.as_ref())
        {
            command.env_remove(name.as_ref());
        }
    }
    let output = command
        .current_dir(super::manifest_dir().join(".."))
        .args(["build", "--release", "-p", "bulkhead-cli", "--bin", "bulkhead"])
        .arg("--message-format=json-render-diagnostics")
        .stderr(Stdio::inherit())
        .output()
        .context("cargo build --release -p bulkhead-cli")?;
    ensure!(output.status.success(), "cargo build --release -p bulkhead-cli failed");
    // One JSON message per line; the binary's artifact names its executable.
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "bulkhead"
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo built bulkhead-cli but named no `bulkhead` executable")
}

/// A running `bulkhead serve` over a fresh data directory (both removed when this is dropped: the
/// process is killed if [`ServeProcess::stop`] was not called).
pub struct ServeProcess {
    child: Child,
    address: String,
    data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl ServeProcess {
    /// Starts `binary --data-dir TMP/data serve --listen 127.0.0.1:0 --metrics-listen off EXTRA...`
    /// with the `BULKHEAD_*` variables of this environment removed, and waits for the line that says
    /// it serves.
    pub fn start(binary: &Path, extra: &[String]) -> Result<ServeProcess> {
        let dir = tempfile::tempdir()?;
        let data_dir = dir.path().join("data");
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "off"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BULKHEAD_") {
                command.env_remove(name);
            }
        }
        let mut child = command.spawn().with_context(|| format!("start {}", binary.display()))?;
        let stderr = child.stderr.take().context("the server's stderr")?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (found, address) = std::sync::mpsc::channel();
        let lines = Arc::clone(&log);
        // Reads the log to its end, so that the pipe never fills and blocks the server.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("bulkhead serving")
                    && let Some(at) = line.find("address=")
                {
                    let value = line[at + "address=".len()..].split_whitespace().next();
                    let _ = found.send(value.unwrap_or_default().to_owned());
                }
                lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
            }
        });
        let mut server = ServeProcess { child, address: String::new(), data_dir, log, _dir: dir };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(address) = address.recv_timeout(Duration::from_millis(100)) {
                server.address = address;
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("bulkhead serve exited with {status}:\n{}", server.log_since(0).join("\n"));
            }
            ensure!(Instant::now() < deadline, "bulkhead serve did not say it serves within a minute");
        }
    }

    /// `host:port`.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every log line from the `from`-th on (0: all of them).
    pub fn log_since(&self, from: usize) -> Vec<String> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.get(from..).unwrap_or_default().to_vec()
    }

    /// How many lines the server has logged so far.
    pub fn log_len(&self) -> usize {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// The development admin token the first start wrote into the data directory.
    pub fn admin_token(&self) -> Result<String> {
        let path = self.data_dir.join("dev-admin.token");
        Ok(std::fs::read_to_string(&path).with_context(|| path.display().to_string())?.trim().to_owned())
    }

    /// Creates tenant `name` through the admin plane and issues it a tenant-admin service key (one
    /// that sees every document of the tenant); returns the key's token.
    pub async fn tenant_with_key(&self, name: &str) -> Result<String> {
        let admin_token = self.admin_token()?;
        let mut admin = client::admin(client::connect(&self.address).await?);
        let create = pb::CreateTenantRequest { name: name.into(), ..Default::default() };
        admin.create_tenant(client::authorized(create, &admin_token)?).await?;
        let issue = pb::IssueApiKeyRequest {
            tenant: name.into(),
            role: pb::Role::TenantAdmin as i32,
            label: "benchmark".into(),
            expires_ms: None,
            binding: None,
        };
        Ok(admin.issue_api_key(client::authorized(issue, &admin_token)?).await?.into_inner().token)
    }

    /// The CPU time (user and system) the server process has used so far.
    pub fn cpu_time(&self) -> Result<Duration> {
        process_cpu_time(&format!("/proc/{}/stat", self.pid()))
    }

    /// SIGTERM, then waits for the process, which must exit with status 0 (calls finished, store
    /// flushed).
    pub fn stop(mut self) -> Result<()> {
        let sent = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status()?;
        ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        let status = self.child.wait()?;
        ensure!(status.success(), "bulkhead serve exited with {status}");
        Ok(())
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The user plus system CPU time in a `/proc/PID/stat` file (`/proc/self/stat` for this process).
pub fn process_cpu_time(stat: &str) -> Result<Duration> {
    let text = std::fs::read_to_string(stat).with_context(|| stat.to_owned())?;
    // The command name (field 2) is in parentheses and may hold spaces; utime and stime are
    // fields 14 and 15, the 12th and 13th after it.
    let after = text.rsplit_once(')').context("a stat line")?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64> { Ok(fields.get(i).context("a stat field")?.parse()?) };
    // Clock ticks of USER_HZ: 100 on x86-64 and ARM64 Linux, the machines this runs on.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The three load averages of `/proc/loadavg` (1, 5 and 15 minutes).
pub fn load_average() -> Result<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").context("/proc/loadavg")?;
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    let mut next = || -> Result<f64> { Ok(fields.next().context("a load average")??) };
    Ok([next()?, next()?, next()?])
}
