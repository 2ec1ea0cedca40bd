//! Servers a test owns: a Redis or a PostgreSQL of its own, started from the installed binaries
//! on ephemeral ports, so that a fault test can kill, pause and restart them without touching
//! the servers every other test shares.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn listening(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(100),
    )
    .is_ok()
}

fn wait_listening(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if listening(port) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("{what} did not listen on {port}")
}

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?
        .success();
    anyhow::ensure!(ok, "kill {sig} {pid}");
    Ok(())
}

/// A Redis of the test's own (nothing kept on disk: a restart comes back empty, as in
/// production without persistence).
pub struct OwnRedis {
    pub port: u16,
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start() -> anyhow::Result<Self> {
        let mut r = Self {
            port: free_port()?,
            child: None,
        };
        r.spawn()?;
        Ok(r)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| anyhow::anyhow!("redis-server: {e} (is Redis installed?)"))?;
        self.child = Some(child);
        wait_listening(self.port, "redis-server")
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: gone at once, with everything it held.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Started again on the same port, empty.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }

    /// SIGSTOP: the port still accepts connections, nothing answers.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self.child.as_ref().map(Child::id).unwrap_or_default();
        signal(pid, "-STOP")
    }

    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self.child.as_ref().map(Child::id).unwrap_or_default();
        signal(pid, "-CONT")
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.resume();
        self.kill();
    }
}

/// A PostgreSQL cluster of the test's own (initdb into a temporary directory; trust auth).
pub struct OwnPostgres {
    pub port: u16,
    data: PathBuf,
    _dir: TempDir,
    bin: PathBuf,
}

/// A temporary directory removed on drop (without a tempfile dependency here).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn pg_bin() -> anyhow::Result<PathBuf> {
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    candidates.sort();
    candidates
        .into_iter()
        .rev()
        .find(|b| b.join("pg_ctl").exists())
        .ok_or_else(|| anyhow::anyhow!("no PostgreSQL server binaries under /usr/lib/postgresql"))
}

/// PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user.
fn pg_command(bin: &Path, tool: &str) -> Command {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

impl OwnPostgres {
    pub fn start() -> anyhow::Result<Self> {
        let bin = pg_bin()?;
        let dir = std::env::temp_dir().join(format!("dream-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)?;
        let _ = Command::new("chown").args(["postgres"]).arg(&dir).status();
        let data = dir.join("data");
        let ok = pg_command(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?
            .success();
        anyhow::ensure!(ok, "initdb failed");
        let pg = Self {
            port: free_port()?,
            data,
            _dir: TempDir(dir),
            bin,
        };
        pg.up()?;
        Ok(pg)
    }

    /// The postmaster's process (its first line of `postmaster.pid`), while it runs.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    fn up(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        let ok = pg_command(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-o", &options, "-l"])
            .arg(self.data.join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .status()?
            .success();
        anyhow::ensure!(ok, "pg_ctl start failed");
        wait_listening(self.port, "postgres")
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A fast shutdown (connections cut, nothing lost).
    pub fn stop(&self) -> anyhow::Result<()> {
        let ok = pg_command(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "fast", "-w", "stop"])
            .stdout(Stdio::null())
            .status()?
            .success();
        anyhow::ensure!(ok, "pg_ctl stop failed");
        Ok(())
    }

    pub fn start_again(&self) -> anyhow::Result<()> {
        self.up()
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin, "pg_ctl")
            .args(["-D"])
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
