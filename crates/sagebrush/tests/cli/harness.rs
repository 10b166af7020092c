//! A fresh home and project copies per test, the binary as a command, and polling with deadlines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
    pub home: PathBuf,
    /// The `--database` every command is given, when not the home's own SQLite file.
    pub database: Option<String>,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = dir.path().join("home");
        Sandbox { dir, home, database: None }
    }

    /// A sandbox outside `/tmp` (under the build's own temporary folder), for a test that looks at `/tmp`.
    pub fn outside_tmp() -> Sandbox {
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
        let home = dir.path().join("home");
        Sandbox { dir, home, database: None }
    }

    /// A sandbox whose commands keep their state in `database` (`SAGEBRUSH_DATABASE`).
    pub fn with_database(database: &str) -> Sandbox {
        let mut sandbox = Sandbox::new();
        sandbox.database = Some(database.to_owned());
        sandbox
    }

    /// Copies `examples/<example>` to `<sandbox>/<as_name>`, renaming the pipeline when `as_name` differs.
    pub fn project(&self, example: &str, as_name: &str) -> PathBuf {
        let source = repo_root().join("examples").join(example);
        let target = self.dir.path().join(as_name);
        copy_dir(&source, &target);
        if as_name != example {
            let file = target.join("sagebrush.toml");
            let text = std::fs::read_to_string(&file).unwrap();
            let text = text
                .replacen(&format!("name = \"{example}\""), &format!("name = \"{as_name}\""), 1)
                .replace(&format!("\"{example}-"), &format!("\"{as_name}-"));
            std::fs::write(&file, text).unwrap();
        }
        target
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sagebrush"));
        command.args(args);
        self.environment(&mut command);
        command
    }

    pub fn environment(&self, command: &mut Command) {
        command.env("SAGEBRUSH_HOME", &self.home).env_remove("SAGEBRUSH_LISTEN").stdin(Stdio::null());
        match &self.database {
            Some(database) => command.env("SAGEBRUSH_DATABASE", database),
            None => command.env_remove("SAGEBRUSH_DATABASE"),
        };
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run sagebrush")
    }

    /// Runs a command that must succeed and prints JSON.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let output = self.run(args);
        assert!(output.status.success(), "sagebrush {args:?} failed:\n{}", text(&output));
        serde_json::from_slice(&output.stdout)
            .unwrap_or_else(|e| panic!("sagebrush {args:?} printed no JSON ({e}):\n{}", text(&output)))
    }

    /// Makes a token in-process (before a server runs) and returns its value.
    pub fn token(&self, name: &str, role: &str) -> String {
        let created = self.json(&["token", "create", name, "--role", role, "--json"]);
        assert_eq!(created["role"], role);
        created["token"].as_str().unwrap().to_owned()
    }

    /// Starts `sagebrush <args>` (a serving command), on a free loopback port unless `args` has `--listen`, and waits for its server file.
    pub fn serve(&self, args: &[&str]) -> Served {
        self.serve_under(&[], args)
    }

    /// [`Sandbox::serve`] with the binary started by `wrapper` (e.g. `prlimit --nofile=1024`).
    pub fn serve_under(&self, wrapper: &[&str], args: &[&str]) -> Served {
        let mut all: Vec<&str> = args.to_vec();
        if !args.contains(&"--listen") {
            all.extend(["--listen", "127.0.0.1:0"]);
        }
        let log = self.dir.path().join(format!("server-{}.log", now_nanos()));
        let file = std::fs::File::create(&log).unwrap();
        let mut command = match wrapper.split_first() {
            None => self.command(&all),
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(env!("CARGO_BIN_EXE_sagebrush")).args(&all);
                self.environment(&mut command);
                command
            }
        };
        let child = command
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start sagebrush");
        let mut served = Served { child, url: String::new(), log };
        let server_file = self.home.join("server.json");
        wait_until(Duration::from_secs(30), "the server file", || {
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("server exited with {status}:\n{}", std::fs::read_to_string(&served.log).unwrap_or_default());
            }
            let text = std::fs::read_to_string(&server_file).ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            // A killed server leaves its file behind; only this child's counts.
            if value["pid"].as_u64() != Some(u64::from(served.child.id())) {
                return None;
            }
            value["url"].as_str().map(str::to_owned)
        })
        .clone_into(&mut served.url);
        served
    }

    /// Waits until the latest run of `project` has ended and returns `show --json`.
    pub fn wait_for_run(&self, project: &str, number: i64) -> serde_json::Value {
        let n = number.to_string();
        wait_until(Duration::from_secs(120), &format!("run {project} #{number} to end"), || {
            let output = self.run(&["show", project, &n, "--json"]);
            if !output.status.success() {
                return None;
            }
            let value: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
            let status = value["run"]["status"].as_str()?;
            (!["queued", "running", "waiting"].contains(&status)).then_some(value)
        })
    }
}

pub struct Served {
    pub child: Child,
    pub url: String,
    pub log: PathBuf,
}

impl Served {
    pub fn invoke(
        &self,
        endpoint: &str,
        content_type: &str,
        body: impl Into<reqwest::blocking::Body>,
    ) -> reqwest::blocking::Response {
        client()
            .post(format!("{}/endpoints/{endpoint}/invocations", self.url))
            .header("content-type", content_type)
            .body(body)
            .send()
            .expect("request")
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// kill -9: the server gets no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SIGTERM, as a service manager stops it: the server removes its containers on the way out.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap_or(i32::MAX));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(30);
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

impl Drop for Sandbox {
    fn drop(&mut self) {
        // What sagebrush leaves running on purpose (the home's registry), or after a test's kill -9.
        let registry = std::fs::read_to_string(self.home.join("registry/registry.json")).unwrap_or_default();
        let pid = serde_json::from_str::<serde_json::Value>(&registry).ok().and_then(|v| v["pid"].as_i64());
        if let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let filter = format!("label=dev.sagebrush.home={}", self.home.display());
        let Ok(listed) = Command::new("docker").args(["ps", "--all", "--quiet", "--filter", &filter]).output() else {
            return;
        };
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout).split_whitespace().map(str::to_owned).collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").args(["rm", "--force"]).args(&ids).output();
        }
    }
}

/// Requests sent back to back to one endpoint from a thread, counting answers that were not 200.
pub struct SteadyLoad {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(usize, usize)>,
}

impl SteadyLoad {
    pub fn start(served: &Served, endpoint: &str) -> SteadyLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let url = format!("{}/endpoints/{endpoint}/invocations", served.url);
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let client = client();
            let (mut ok, mut failed) = (0, 0);
            // Bounded in count as well as by the stop flag.
            for _ in 0..200_000 {
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                let response = client.post(&url).header("content-type", "text/csv").body("5.1,3.5,1.4,0.2\n").send();
                match response {
                    Ok(r) if r.status() == 200 => ok += 1,
                    _ => failed += 1,
                }
            }
            (ok, failed)
        });
        SteadyLoad { stop, thread }
    }

    /// Stops the load and returns (succeeded, failed).
    pub fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap()
}

/// Polls `probe` until it returns Some, failing the test past `limit`.
pub fn wait_until<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn text(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn payload() -> Vec<u8> {
    std::fs::read(repo_root().join("examples/iris/data/payload.csv")).unwrap()
}

/// The endpoint record of `name` from `endpoints --json`.
pub fn endpoint(sandbox: &Sandbox, name: &str) -> serde_json::Value {
    let all = sandbox.json(&["endpoints", "--json"]);
    all.as_array().unwrap().iter().find(|e| e["name"] == name).cloned().unwrap_or(serde_json::Value::Null)
}

/// Runs `git` in `dir` as a test user, and returns its trimmed output.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .output()
        .expect("git is installed");
    assert!(output.status.success(), "git {args:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(files_under(&path)) } else { files.push(path) }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

/// Sends `request` as it is (no URL normalisation, any Host) to the server at `url`; the status and the whole answer.
pub fn raw_http(url: &str, request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer)
}

/// Pids of the processes whose command line contains `marker`.
pub fn processes_with(marker: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            // Zombies have an empty command line and are gone as far as a user can tell.
            String::from_utf8_lossy(&cmdline).replace('\0', " ").contains(marker)
        })
        .collect()
}
