//! A Postgres server of Debian's packages for one test: its own data folder and loopback port,
//! stopped when dropped. It fails the test, never skips it, when Postgres cannot start.
//! The store's tests and the CLI's include it; each uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Postgres {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

/// The folder of Debian's Postgres programs (`/usr/lib/postgresql/<version>/bin`).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("Postgres is not installed: apt-get install postgresql (test.sh does)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").is_file())
        .collect();
    found.sort();
    found.pop().expect("no /usr/lib/postgresql/<version>/bin/postgres: apt-get install postgresql")
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Runs a Postgres program as the `postgres` user when we are root (Postgres refuses root).
fn command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command.args(["--reuid=postgres", "--regid=postgres", "--clear-groups"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn chown_to_postgres(path: &Path) {
    if is_root() {
        let done = Command::new("chown").args(["-R", "postgres:postgres"]).arg(path).status().unwrap();
        assert!(done.success(), "chown {} to postgres", path.display());
    }
}

/// An initialised data folder, made once per machine and copied for each test (initdb takes seconds).
fn template(bin: &Path) -> PathBuf {
    let version = bin.parent().and_then(|v| v.file_name()).unwrap().to_string_lossy().into_owned();
    let template = std::env::temp_dir().join(format!("sagebrush-test-pg{version}-template"));
    if template.join("PG_VERSION").is_file() {
        return template;
    }
    let scratch = tempfile::Builder::new().prefix("sagebrush-test-pg-init").tempdir().unwrap();
    chown_to_postgres(scratch.path());
    let data = scratch.path().join("data");
    let out = command(&bin.join("initdb"))
        .args(["-U", "sagebrush", "-A", "trust", "-E", "UTF8", "--no-sync", "-D"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
    // Another test may have made it meanwhile; either copy is as good.
    let _ = std::fs::rename(&data, &template);
    template
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(false)
    }

    /// A server that takes TLS connections only, with a certificate for 127.0.0.1 from a CA of its
    /// own; the CA's certificate, to give as `sslrootcert`.
    pub fn start_tls_only() -> (Postgres, PathBuf) {
        let postgres = Postgres::start_with(true);
        let ca = postgres.dir.path().join("ca.crt");
        (postgres, ca)
    }

    fn start_with(tls: bool) -> Postgres {
        let bin = bin_dir();
        let template = template(&bin);
        let dir = tempfile::Builder::new().prefix("sagebrush-test-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        let copied = Command::new("cp").arg("-a").arg(&template).arg(&data).status().unwrap();
        assert!(copied.success(), "copying the Postgres template");
        let mut settings =
            vec!["fsync=off".to_owned(), "synchronous_commit=off".to_owned(), "full_page_writes=off".to_owned()];
        if tls {
            let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
            // A CA of its own, and the server's certificate signed by it, as a managed database has.
            let extensions = dir.path().join("server.ext");
            std::fs::write(&extensions, "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n").unwrap();
            let openssl = |args: &[&str]| {
                let made = Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap();
                assert!(made.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&made.stderr));
            };
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=sagebrush test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ]);
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ]);
            std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
            // Local socket for the tools, TLS for every TCP connection: a plain one is refused.
            std::fs::write(data.join("pg_hba.conf"), "local all all trust\nhostssl all all 127.0.0.1/32 trust\n")
                .unwrap();
            settings.push("ssl=on".to_owned());
            settings.push(format!("ssl_cert_file={}", cert.display()));
            settings.push(format!("ssl_key_file={}", key.display()));
        }
        chown_to_postgres(dir.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).unwrap();
        // Durability off: a test's database is thrown away, and fsync is most of a commit's time.
        let child = command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting postgres");
        let mut postgres = Postgres { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .arg("-h")
                .arg(postgres.dir.path())
                .args(["-p", &port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return postgres;
            }
            if let Ok(Some(status)) = postgres.child.try_wait() {
                let log = std::fs::read_to_string(postgres.dir.path().join("postgres.log")).unwrap_or_default();
                panic!("postgres exited ({status}): {log}");
            }
            assert!(Instant::now() < deadline, "postgres did not accept connections within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A fresh, empty database on this server; its URL.
    pub fn database(&self, name: &str) -> String {
        let bin = bin_dir();
        let out = Command::new(bin.join("createdb"))
            .arg("-h")
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "sagebrush", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "createdb {name}: {}", String::from_utf8_lossy(&out.stderr));
        format!("postgres://sagebrush@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is Postgres's fast shutdown: it ends its backends and exits.
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
