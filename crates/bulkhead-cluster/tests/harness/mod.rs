//! A throwaway etcd cluster on loopback for the tests: members started from Debian's `etcd`
//! (installed by scripts/setup) on ephemeral ports, each with its own data directory; killed with
//! SIGKILL and restarted on the same ports and data; all killed on drop. The binary's tests use it
//! too (`crates/bulkhead-cli/tests/it/cluster.rs`, by path).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The etcd binary: `$BULKHEAD_ETCD`, else `etcd` on the PATH.
fn etcd_binary() -> String {
    std::env::var("BULKHEAD_ETCD").unwrap_or_else(|_| "etcd".into())
}

/// A port free right now on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("an ephemeral port").port()
}

struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

pub struct Etcd {
    dir: tempfile::TempDir,
    members: Vec<Member>,
}

impl Etcd {
    /// Starts `size` members and waits until the cluster answers.
    pub async fn start(size: usize) -> Etcd {
        let version = Command::new(etcd_binary()).arg("--version").output();
        assert!(
            version.is_ok_and(|o| o.status.success()),
            "no etcd binary ({}): run scripts/setup, which installs Debian's etcd-server, or set \
             BULKHEAD_ETCD",
            etcd_binary()
        );
        let members = (0..size)
            .map(|i| Member {
                name: format!("m{i}"),
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            })
            .collect();
        let mut etcd = Etcd { dir: tempfile::tempdir().expect("a temporary directory"), members };
        for i in 0..size {
            etcd.spawn(i);
        }
        etcd.wait_ready().await;
        etcd
    }

    /// The client endpoints of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| format!("http://127.0.0.1:{}", m.client_port)).collect()
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    fn spawn(&mut self, i: usize) {
        let initial: Vec<String> =
            self.members.iter().map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port)).collect();
        let member = &self.members[i];
        let log = std::fs::File::create(self.log(&member.name)).expect("a log file");
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let child = Command::new(etcd_binary())
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(self.dir.path().join(&member.name))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &initial.join(","), "--initial-cluster-state", "new"])
            .args(["--initial-cluster-token", "bulkhead-test", "--logger", "zap", "--log-outputs", "stderr"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("etcd starts");
        self.members[i].child = Some(child);
    }

    /// Kills member `i` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts member `i` on its ports and data directory.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].child.is_none(), "member {i} is running");
        self.spawn(i);
    }

    /// Waits (at most 30 s) until member `i` itself answers a linearizable read, that is, until it
    /// has rejoined the cluster and caught up with its leader.
    pub async fn wait_member(&self, i: usize) {
        let endpoint = format!("http://127.0.0.1:{}", self.members[i].client_port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A linearizable read through this member alone.
            let attempt = async {
                bulkhead_cluster::Cluster::connect(std::slice::from_ref(&endpoint), "ready")
                    .await?
                    .nodes()
                    .await
            };
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(_)) => return,
                outcome => {
                    let name = &self.members[i].name;
                    assert!(
                        Instant::now() < deadline,
                        "member {name} did not rejoin: {outcome:?}\n{}",
                        std::fs::read_to_string(self.log(name)).unwrap_or_default()
                    );
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Waits (at most 30 s) until the cluster answers a linearizable read through any member.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // A linearizable read: it needs a leader, so a quorum.
            let attempt =
                async { bulkhead_cluster::Cluster::connect(&self.endpoints(), "ready").await?.nodes().await };
            match tokio::time::timeout(Duration::from_secs(3), attempt).await {
                Ok(Ok(_)) => return,
                outcome => {
                    if Instant::now() > deadline {
                        let logs: Vec<String> = self
                            .members
                            .iter()
                            .map(|m| std::fs::read_to_string(self.log(&m.name)).unwrap_or_default())
                            .collect();
                        panic!("etcd did not become ready: {outcome:?}\n{}", logs.join("\n---\n"));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.kill(i);
        }
    }
}
