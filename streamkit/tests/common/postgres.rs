//! A private PostgreSQL server for a test that stops and starts it (the shared throwaway
//! server of `scripts/test.sh` serves other tests concurrently and must stay up).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use tokio_postgres::NoTls;

/// A server in a temporary directory on a free port, stopped (`-m immediate`) and removed on
/// drop. Run as root (as in CI), its binaries run as the `postgres` user, as
/// `scripts/lib.sh::start_throwaway_postgres` does.
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PrivatePostgres {
    /// `initdb` and `pg_ctl start`, waiting until the server accepts connections.
    pub fn start() -> PrivatePostgres {
        let bin = server_binaries();
        let dir = tempfile::Builder::new()
            .prefix("streamkit-private-pg")
            .tempdir()
            .unwrap();
        // Root? (`id -u`: no libc dependency for one call.)
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", dir.path().display());
        }
        let mut server = PrivatePostgres {
            bin,
            dir,
            port: 0,
            as_postgres,
        };
        let data = server.data_dir();
        let initdb = server
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            initdb.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&initdb.stdout),
            String::from_utf8_lossy(&initdb.stderr)
        );
        // Another process may take a free port between the probe and the server's bind: try a
        // few.
        for attempt in 0.. {
            server.port = free_port();
            if server.try_start() {
                break;
            }
            assert!(attempt < 5, "the server did not start: {}", server.log());
        }
        server
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once, as a crash would: backends killed, no checkpoint.
    pub fn stop_immediately(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the stopped server again: same data directory, same port (crash recovery).
    pub fn restart(&self) {
        assert!(
            self.try_start(),
            "the server did not restart: {}",
            self.log()
        );
    }

    /// A blocking query on a fresh connection (the server may have been restarted since the
    /// last one): the first column of the first row, as i64. `None` while unreachable.
    pub fn query_i64(&self, sql: &str) -> Option<i64> {
        self.query(sql)
            .map(|rows| rows.first().map_or(0, |r| r.get(0)))
    }

    /// Blocking rows of `sql`, on a fresh connection; `None` while unreachable.
    pub fn query(&self, sql: &str) -> Option<Vec<tokio_postgres::Row>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut config: tokio_postgres::Config = self.url().parse().unwrap();
            config.connect_timeout(Duration::from_secs(5));
            let (client, conn) = config.connect(NoTls).await.ok()?;
            tokio::spawn(conn);
            tokio::time::timeout(Duration::from_secs(30), client.query(sql, &[]))
                .await
                .ok()?
                .ok()
        })
    }

    /// Runs `sql` (statements separated by `;`), panicking on failure.
    pub fn execute(&self, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&self.url(), NoTls).await.unwrap();
            tokio::spawn(conn);
            client.batch_execute(sql).await.unwrap();
        });
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn try_start(&self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        self.command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` (a panic, not a skip, when
/// there is none).
fn server_binaries() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).expect(
        "initdb not found under /usr/lib/postgresql/*/bin: this test starts a PostgreSQL \
         server of its own (apt-get install postgresql)",
    )
}

/// A port free now, below the ephemeral range, so that no outgoing connection takes it while
/// the server is down.
fn free_port() -> u16 {
    let seed = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
    let start = 20_000 + (seed % 10_000) as u16;
    (start..30_000)
        .chain(20_000..start)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("no free port in 20000..30000")
}
