//! Process-runtime algorithms: a folder's `train` and `serve`, unmodified, each job with a private /opt/ml.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{Sandbox, SteadyLoad, endpoint, payload, processes_with, text, wait_until};

#[test]
fn the_python_algorithm_goes_to_prod_and_is_updated_in_place() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris-python", "iris-python");
    let served = sandbox.serve(&["server"]);
    let first = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());

    let response = served.invoke("iris-python-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    let body = response.text().unwrap();
    assert_eq!(body.lines().count(), 29, "{body}");
    assert!(body.lines().all(|l| ["setosa", "versicolor", "virginica"].contains(&l)), "{body}");
    // The container's own 415 comes back as SageMaker's ModelError, with the container's status.
    let refused = served.invoke("iris-python-prod", "application/json", "{}");
    assert_eq!(refused.status(), 424);
    assert_eq!(refused.json::<serde_json::Value>().unwrap()["OriginalStatusCode"], 415);

    // The new `serve` takes traffic only once it answers /ping; the old one drains: no request fails.
    let load = SteadyLoad::start(&served, "iris-python-prod");
    let second = sandbox.run(&["run", project.to_str().unwrap(), "-p", "max_leaf_nodes=3"]);
    let (ok, failed) = load.finish();
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(failed, 0, "requests failed during the update ({ok} succeeded)");
    assert!(ok > 0);
    assert_eq!(endpoint(&sandbox, "iris-python-prod")["model_version"], 2);
    assert_eq!(served.invoke("iris-python-prod", "text/csv", payload()).text().unwrap().lines().count(), 29);
}

/// An algorithm whose `train` says it started, waits for the test's go, then records what it sees.
fn write_peeking_algorithm(project: &Path, home: &Path) {
    let algorithm = project.join("algorithm");
    std::fs::create_dir_all(&algorithm).unwrap();
    let train = format!(
        r#"#!/bin/sh
set -e
touch /opt/ml/output/data/started
# Both jobs must be running at once for the isolation check to mean anything: the test says when.
n=0
while [ ! -e /opt/ml/output/data/go ]; do n=$((n+1)); [ $n -lt 1200 ] || exit 3; sleep 0.05; done
ls /opt/ml/input/data/training > /opt/ml/model/seen.txt
ls -A {home} | wc -l > /opt/ml/model/home-entries.txt
echo "train_accuracy=1.0"
"#,
        home = home.display()
    );
    std::fs::write(algorithm.join("train"), train).unwrap();
    std::fs::write(algorithm.join("serve"), "#!/bin/sh\nexit 1\n").unwrap();
    for name in ["train", "serve"] {
        std::fs::set_permissions(algorithm.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

/// The files of a run's model archive, unpacked under `<sandbox>/<name>-model`.
fn unpacked_model(sandbox: &Sandbox, name: &str) -> PathBuf {
    let archive = sandbox.home.join(format!("artifacts/{name}-1/output/model.tar.gz"));
    let unpacked = sandbox.dir.path().join(format!("{name}-model"));
    std::fs::create_dir_all(&unpacked).unwrap();
    let tar = std::process::Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&unpacked).output().unwrap();
    assert!(tar.status.success(), "{}", text(&tar));
    unpacked
}

/// The project `<dir>/<name>`: one train stage running the shell script `train` from its folder
/// `algorithm` (at `workdir` in the sandbox, when given), on a one-row channel.
fn shell_algorithm_project(dir: &Path, name: &str, train: &str, workdir: Option<&str>) -> PathBuf {
    let project = dir.join(name);
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::write(project.join("data/train.csv"), "a,1\n").unwrap();
    let algorithm = project.join("algorithm");
    std::fs::create_dir_all(&algorithm).unwrap();
    std::fs::write(algorithm.join("train"), train).unwrap();
    std::fs::set_permissions(algorithm.join("train"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let workdir = workdir.map(|w| format!("workdir = \"{w}\"\n")).unwrap_or_default();
    std::fs::write(
        project.join("sagebrush.toml"),
        format!(
            "[pipeline]\nname = \"{name}\"\n[algorithm]\nprocess = \"algorithm\"\n{workdir}\
             [[stage]]\nkind = \"train\"\nchannels = {{ training = \"data/train.csv\" }}\n"
        ),
    )
    .unwrap();
    project
}

#[test]
fn concurrent_jobs_see_only_their_own_opt_ml_and_not_the_home() {
    // Outside /tmp, so the home is hidden by the sandbox itself, not by its private /tmp.
    let sandbox = Sandbox::outside_tmp();
    let mut children = Vec::new();
    for name in ["left", "right"] {
        let project = sandbox.dir.path().join(name);
        std::fs::create_dir_all(project.join("data")).unwrap();
        std::fs::write(project.join(format!("data/{name}-only.csv")), "a,1\n").unwrap();
        write_peeking_algorithm(&project, &sandbox.home);
        std::fs::write(
            project.join("sagebrush.toml"),
            format!(
                r#"[pipeline]
name = "{name}"
[algorithm]
process = "algorithm"
[[stage]]
kind = "train"
channels = {{ training = "data/{name}-only.csv" }}
max_runtime = "120s"
"#
            ),
        )
        .unwrap();
        children.push(
            sandbox
                .command(&["run", project.to_str().unwrap()])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    let data = |name: &str| sandbox.home.join(format!("work/{name}-1/jobs/{name}-1/opt_ml/output/data"));
    wait_until(Duration::from_secs(60), "both jobs to have started", || {
        ["left", "right"].iter().all(|name| data(name).join("started").exists()).then_some(())
    });
    for name in ["left", "right"] {
        std::fs::write(data(name).join("go"), "").unwrap();
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    for name in ["left", "right"] {
        let unpacked = unpacked_model(&sandbox, name);
        let seen = std::fs::read_to_string(unpacked.join("seen.txt")).unwrap();
        assert_eq!(seen.trim(), format!("{name}-only.csv"));
        let home_entries = std::fs::read_to_string(unpacked.join("home-entries.txt")).unwrap();
        assert_eq!(home_entries.trim(), "0", "{name} saw the home's files (the other job's among them)");
    }
}

/// Everything under `dirs` (not following links): each path with its kind, and a file's size and modification time.
fn snapshot(dirs: &[&str], except: &Path) -> std::collections::BTreeSet<String> {
    fn walk(dir: &Path, except: &Path, into: &mut std::collections::BTreeSet<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.starts_with(except) {
                continue;
            }
            let Ok(metadata) = path.symlink_metadata() else { continue };
            if metadata.is_dir() {
                into.insert(format!("{}/", path.display()));
                walk(&path, except, into);
            } else {
                let modified = metadata.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                into.insert(format!("{} {} {:?}", path.display(), metadata.len(), modified));
            }
        }
    }
    let mut all = std::collections::BTreeSet::new();
    for dir in dirs {
        walk(Path::new(dir), except, &mut all);
    }
    all
}

/// The pid in an instance's `netns:<pid>/127.0.0.1:8080`.
fn namespace_pid(url: &str) -> u32 {
    url.strip_prefix("netns:")
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("`{url}` is not an instance in a network namespace of its own"))
}

/// The PID namespace the children of `pid` (an instance's `unshare`) are in, as `pid:[inode]`.
fn namespace_of_children(pid: u32) -> String {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/pid_for_children")).unwrap();
    link.display().to_string()
}

/// How many processes of this machine are in the PID namespace `namespace`.
fn processes_in(namespace: &str) -> usize {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()))
        .filter(|e| std::fs::read_link(e.path().join("ns/pid")).is_ok_and(|l| l.display().to_string() == namespace))
        .count()
}

/// `GET /ping` on port 8080 inside the network namespace of `pid`, as a person would check it.
fn ping_inside(pid: u32) -> String {
    let output = std::process::Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-n", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg("http://127.0.0.1:8080/ping")
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_workshop_container_serves_twice_on_port_8080_and_leaves_the_host_as_it_was() {
    let sandbox = Sandbox::outside_tmp();
    // The Docker example's container folder and data, which the process example reads from one folder up.
    sandbox.project("scikit-byo", "scikit-byo");
    let project = sandbox.project("scikit-byo-process", "scikit-byo-process");
    let watched = ["/tmp", "/var/log", "/run"];
    let before = snapshot(&watched, sandbox.dir.path());

    let served = sandbox.serve(&["server", "--health-interval", "0.5"]);
    let run = sandbox.run(&["run", project.to_str().unwrap(), "-p", "instances=2"]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());
    let prod = endpoint(&sandbox, "scikit-byo-process-prod");
    let instances = prod["variants"][0]["instance_health"].as_array().cloned().unwrap_or_default();
    assert_eq!(instances.len(), 2, "{prod}");
    let pids: Vec<u32> = instances.iter().map(|i| namespace_pid(i["url"].as_str().unwrap())).collect();
    assert_ne!(pids[0], pids[1]);
    // Each binds 8080 in its own network namespace, and each answers there.
    for pid in &pids {
        assert_eq!(ping_inside(*pid), "200", "the instance in the namespace of {pid}");
    }
    for _ in 0..6 {
        let response = served.invoke("scikit-byo-process-prod", "text/csv", payload());
        assert_eq!(response.status(), 200);
        let body = response.text().unwrap();
        assert_eq!(body.lines().count(), 29, "{body}");
        assert!(body.lines().all(|l| ["setosa", "versicolor", "virginica"].contains(&l)), "{body}");
    }
    // The container's own 415, through its nginx and gunicorn, is SageMaker's ModelError.
    let refused = served.invoke("scikit-byo-process-prod", "application/json", "{}");
    assert_eq!(refused.status(), 424);
    assert_eq!(refused.json::<serde_json::Value>().unwrap()["OriginalStatusCode"], 415);
    let log = std::fs::read_to_string(sandbox.home.join("logs/endpoints/scikit-byo-process-prod.log")).unwrap();
    assert!(log.contains("Listening at: unix:/tmp/gunicorn.sock"), "{log}");

    // An instance that dies is replaced by the health check, in a namespace of its own again.
    let load = SteadyLoad::start(&served, "scikit-byo-process-prod");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pids[0] as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    let replaced = wait_until(Duration::from_secs(60), "the killed instance to be replaced", || {
        let prod = endpoint(&sandbox, "scikit-byo-process-prod");
        let now: Vec<u32> = prod["variants"][0]["instance_health"]
            .as_array()?
            .iter()
            .filter_map(|i| i["url"].as_str().map(namespace_pid))
            .collect();
        (now.len() == 2 && !now.contains(&pids[0])).then_some(now)
    });
    let (ok, failed) = load.finish();
    assert!(ok > 0, "{}", served.output());
    assert!(replaced.contains(&pids[1]), "the healthy instance is kept: {pids:?} -> {replaced:?}");
    for pid in &replaced {
        assert_eq!(ping_inside(*pid), "200", "the instance in the namespace of {pid}");
    }
    // Requests in flight on the killed instance's connections fail; the others go on.
    assert!(failed < ok, "{failed} failed, {ok} answered");

    // Each sandbox is a PID namespace holding the server's processes: nginx, gunicorn and its workers.
    let namespaces: Vec<String> = replaced.iter().map(|pid| namespace_of_children(*pid)).collect();
    for namespace in &namespaces {
        assert!(processes_in(namespace) >= 4, "{namespace} holds the sandbox, serve, nginx and gunicorn");
    }
    drop(served);
    // Every sandbox, and all it started, stopped with the server.
    let home = sandbox.home.display().to_string();
    wait_until(Duration::from_secs(10), "the sandboxes to stop", || processes_with(&home).is_empty().then_some(()));
    for namespace in &namespaces {
        wait_until(Duration::from_secs(10), "every process of the sandboxes to end", || {
            (processes_in(namespace) == 0).then_some(())
        });
    }
    let after = snapshot(&watched, sandbox.dir.path());
    let added: Vec<&String> = after.difference(&before).collect();
    let removed: Vec<&String> = before.difference(&after).collect();
    assert!(added.is_empty() && removed.is_empty(), "the host changed:\nadded {added:#?}\nremoved {removed:#?}");
}

#[test]
fn a_job_writes_nothing_of_the_machine_but_its_own_opt_ml() {
    let sandbox = Sandbox::outside_tmp();
    let project = sandbox.dir.path().join("probe");
    let marker = format!("sagebrush-probe-{}", std::process::id());
    let targets = ["/etc", "/var/lib", "/root", "/usr/local", "/tmp", "/var/tmp", "/var/log", "/run", "/dev/shm"];
    let project_dir = project.display().to_string();
    let home_dir = sandbox.home.display().to_string();
    let every: Vec<&str> = targets.iter().copied().chain([project_dir.as_str(), home_dir.as_str()]).collect();
    let train = format!(
        r#"#!/bin/sh
for dir in {dirs}; do
  if echo probe > "$dir/{marker}" 2>/dev/null; then echo "wrote $dir"; else echo "refused $dir"; fi
done
echo "workdir=$(pwd)"
echo "path=$PATH"
# What would undo the sandbox, or reach the machine past it: each must be refused.
umount /opt/ml 2>/dev/null && echo "undid: umount /opt/ml"
mount -o remount,rw,bind / 2>/dev/null && echo "undid: remount / rw"
mount -t tmpfs none /mnt 2>/dev/null && echo "undid: mounted a tmpfs"
mknod /root/disk b 8 0 2>/dev/null && echo "undid: made a block device"
echo "devices=$(ls /dev | tr '\n' ' ')"
echo "network=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\n' ' ')"
echo made > /opt/ml/model/made.txt
echo "train_accuracy=1.0"
"#,
        dirs = every.join(" ")
    );
    shell_algorithm_project(sandbox.dir.path(), "probe", &train, Some("/opt/ml/code"));
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run));
    let log = std::fs::read_to_string(sandbox.home.join("logs/probe/1/train.log")).unwrap();
    // The program runs from where the pipeline said its image has it, first on PATH.
    assert!(log.contains("workdir=/opt/ml/code"), "{log}");
    assert!(log.contains("path=/opt/ml/code:"), "{log}");
    assert!(!log.contains("undid:"), "{log}");
    let devices = log.lines().find_map(|l| l.strip_prefix("devices=")).unwrap_or_default();
    for device in devices.split_whitespace() {
        let allowed = ["null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "mqueue", "fd"];
        assert!(allowed.contains(&device) || device.starts_with("std"), "the job sees /dev/{device}: {devices}");
    }
    // A training job's network is its own loopback, as SageMaker's with network isolation.
    assert!(log.contains("network=lo \n"), "{log}");
    // A container's writes land in its own layer: they succeed, and the host never sees them.
    for dir in targets {
        assert!(log.contains(&format!("wrote {dir}")), "{log}");
    }
    for dir in &every {
        let written = Path::new(dir).join(&marker);
        assert!(!written.exists(), "the job wrote {} on the host", written.display());
    }
    assert_eq!(std::fs::read_to_string(unpacked_model(&sandbox, "probe").join("made.txt")).unwrap(), "made\n");
}

#[test]
fn without_the_privileges_for_namespaces_a_job_fails_saying_what_is_missing() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris-python", "iris-python");
    // Root without CAP_SYS_ADMIN, as in a container started without it.
    let run = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_sagebrush"))
        .args(["run", project.to_str().unwrap(), "--json"])
        .env("SAGEBRUSH_HOME", &sandbox.home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let shown = sandbox.json(&["show", "iris-python", "1", "--json"]);
    let train = shown["stages"].as_array().unwrap().iter().find(|s| s["name"] == "train").cloned().unwrap();
    assert_eq!(train["status"], "failed", "{shown}");
    let reason = shown.to_string();
    for needed in ["namespaces", "CAP_SYS_ADMIN", "unprivileged user namespaces", "Operation not permitted"] {
        assert!(reason.contains(needed), "`{needed}` is not in what the run says: {shown}");
    }
    // doctor says so before any run does.
    let doctor = std::process::Command::new("setpriv")
        .args(["--bounding-set", "-sys_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_sagebrush"))
        .args(["doctor", "--json"])
        .env("SAGEBRUSH_HOME", &sandbox.home)
        .output()
        .unwrap();
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let process = checks.as_array().unwrap().iter().find(|c| c["name"] == "process").cloned().unwrap();
    assert_eq!(process["status"], "warn", "{process:#}");
    assert!(process["detail"].as_str().unwrap().contains("CAP_SYS_ADMIN"), "{process:#}");
}

#[test]
fn a_user_without_root_runs_a_job_as_root_of_a_user_namespace_with_the_machine_read_only() {
    let sandbox = Sandbox::new();
    let marker = format!("sagebrush-rootless-{}", std::process::id());
    let train = format!(
        "#!/bin/sh\necho \"uid=$(id -u) workdir=$(pwd)\"\n\
         if echo x > /etc/{marker} 2>/dev/null; then echo 'wrote /etc'; else echo 'refused /etc'; fi\n\
         echo x > /tmp/{marker} && echo 'wrote /tmp'\necho made > /opt/ml/model/made.txt\n"
    );
    let project = shell_algorithm_project(sandbox.dir.path(), "rootless", &train, Some("/opt/ml/code"));
    let algorithm = project.join("algorithm");
    // Everything the user `nobody` needs: its home, the project, and /opt/ml (made once by root).
    std::fs::create_dir_all("/opt/ml").unwrap();
    for path in [sandbox.dir.path(), project.as_path(), algorithm.as_path(), &project.join("data")] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let run = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_sagebrush"))
        .args(["run", project.to_str().unwrap()])
        .env("SAGEBRUSH_HOME", &sandbox.home)
        .env("HOME", sandbox.dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", text(&run));
    let log = std::fs::read_to_string(sandbox.home.join("logs/rootless/1/train.log")).unwrap();
    // Root in a user namespace of its own; the machine read-only, its own /tmp writable.
    assert!(log.contains("uid=0 workdir=/opt/ml/code"), "{log}");
    assert!(log.contains("refused /etc") && log.contains("wrote /tmp"), "{log}");
    assert!(!Path::new("/etc").join(&marker).exists() && !Path::new("/tmp").join(&marker).exists());
    assert_eq!(std::fs::read_to_string(unpacked_model(&sandbox, "rootless").join("made.txt")).unwrap(), "made\n");
}

#[test]
fn a_failure_file_that_links_to_the_machines_files_is_not_read() {
    let sandbox = Sandbox::new();
    // The host's file, named from inside: sagebrush reads /opt/ml/output/failure on the host.
    let secret = sandbox.dir.path().join("secret.txt");
    std::fs::write(&secret, "the host's secret").unwrap();
    let train = format!("#!/bin/sh\nln -s {} /opt/ml/output/failure\nexit 1\n", secret.display());
    let project = shell_algorithm_project(sandbox.dir.path(), "liar", &train, None);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run));
    let shown = sandbox.json(&["show", "liar", "1", "--json"]);
    assert!(!shown.to_string().contains("the host's secret"), "{shown}");
    assert!(shown.to_string().contains("train exited with status 1"), "{shown}");
}
