//! Inside the process runtime's sandbox: what a container gives a SageMaker job or model server,
//! made from namespaces of this machine, so the files of a container run unmodified without Docker.
//!
//! `sagebrush sandbox` is the first process of a fresh PID, mount (and, to serve, network)
//! namespace that [`crate::process::sandboxed`] made with util-linux `unshare`. Before it
//! starts `train` or `serve` it assembles a new root and enters it:
//!
//! - the machine's root through a private copy-on-write layer in memory, as a container sees its
//!   image (in a user namespace, where overlayfs cannot layer it, the root read-only instead);
//!   every other mount of the machine read-only;
//! - the job's own directory on `/opt/ml`, the only place its writes reach the host;
//! - the program folder at its working directory (`/opt/program`, the workshop's Dockerfile's
//!   `WORKDIR`), its writes in memory too, first on `PATH`;
//! - private, empty `tmpfs` on `/tmp`, `/var/tmp`, `/run`, `/var/log` and `/dev/shm` (with the
//!   host's folders of `/run` and `/var/log`, empty, as an image has them); the sagebrush home
//!   and the user's credential folders hidden; `/proc` its own, `/proc/sys` read-only;
//! - to serve, the loopback of its network namespace up, so the server binds port 8080 as in a
//!   container while any number of others do the same.
//!
//! It then says so on its control socket (its stdin), reaps every process orphaned to it, and
//! answers each connection request there with a socket connected to the server inside (passed
//! with `SCM_RIGHTS`): the router reaches an instance with no port published on the host.

use std::ffi::OsString;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::errno::Errno;
use nix::mount::{MsFlags, mount};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

pub use names::workdir::{DEFAULT_WORKDIR, check_workdir};

/// The exit status of a sandbox that could not be set up (Docker's for its own failures).
pub const SETUP_FAILED: i32 = 125;

/// Control-socket bytes: the sandbox is ready, or could not be set up (its reason follows).
pub(crate) const READY: u8 = b'R';
pub(crate) const FAILED: u8 = b'E';
/// Asks for a connection to the server inside; answered with [`CONNECTED`] and the socket, or [`REFUSED`].
pub(crate) const CONNECT: u8 = b'c';
pub(crate) const CONNECTED: u8 = b'1';
pub(crate) const REFUSED: u8 = b'0';

/// A folder with `train` and `serve`, and where a container would have it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The folder on this machine.
    pub dir: PathBuf,
    /// Its path inside the sandbox: the working directory, first on `PATH`.
    pub workdir: PathBuf,
}

/// What `sagebrush sandbox` runs, from its command line.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The job's or instance's own directory, bound on `/opt/ml`.
    pub opt_ml: PathBuf,
    pub program: Program,
    /// The port the server listens on inside, for a serving sandbox (its own network namespace).
    pub serve_port: Option<u16>,
    /// Folders of this machine the job must not see (the sagebrush home: other jobs' files), each
    /// covered by an empty tmpfs.
    pub hidden: Vec<PathBuf>,
    /// `train` or `serve`, looked up on the sandbox's `PATH`.
    pub command: Vec<OsString>,
}

impl Spec {
    /// The arguments of `sagebrush sandbox` that describe this spec (what the binary's parser reads back).
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec!["sandbox".into(), "--opt-ml".into(), self.opt_ml.clone().into()];
        args.extend(["--program".into(), self.program.dir.clone().into()]);
        args.extend(["--workdir".into(), self.program.workdir.clone().into()]);
        if let Some(port) = self.serve_port {
            args.extend(["--serve-port".into(), port.to_string().into()]);
        }
        for hidden in &self.hidden {
            args.extend(["--hide".into(), hidden.clone().into()]);
        }
        args.push("--".into());
        args.extend(self.command.iter().cloned());
        args
    }
}

/// A step of the set-up that failed: what, why, and what to do.
#[derive(Debug)]
struct SetupError(String);

impl SetupError {
    fn of(what: impl std::fmt::Display, errno: Errno) -> SetupError {
        let hint = match errno {
            Errno::EPERM | Errno::EACCES => {
                "; the process runtime needs CAP_SYS_ADMIN in its namespaces: run sagebrush as root, or as a user \
                 allowed unprivileged user namespaces"
            }
            _ => "",
        };
        SetupError(format!("{what}: {}{hint}", errno.desc()))
    }
}

/// Runs `spec` as the first process of its namespaces; returns the exit status to exit with.
///
/// Its exit ends the PID namespace, and with it whatever the command left running.
pub fn init(spec: &Spec) -> i32 {
    let control = std::io::stdin().as_fd().try_clone_to_owned().map(UnixStream::from).ok();
    let child = match set_up(spec).and_then(|()| start(spec)) {
        Ok(child) => child,
        Err(SetupError(why)) => {
            eprintln!("sagebrush sandbox: {why}");
            if let Some(mut control) = control.as_ref() {
                let _ = control.write_all(&[FAILED]).and_then(|()| control.write_all(why.as_bytes()));
            }
            return SETUP_FAILED;
        }
    };
    if let Some(control) = control {
        let _ = (&control).write_all(&[READY]);
        if let Some(port) = spec.serve_port {
            std::thread::spawn(move || answer_connections(&control, port));
        }
    }
    reap(Pid::from_raw(child.id() as i32))
}

/// Starts the command from the workdir, found on a `PATH` that has the workdir first, as an
/// image's `ENV PATH=/opt/program:$PATH` has it.
fn start(spec: &Spec) -> Result<std::process::Child, SetupError> {
    let (program, args) = spec.command.split_first().ok_or_else(|| SetupError("no command to run".to_owned()))?;
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut search = OsString::from(spec.program.workdir.as_os_str());
    search.push(":");
    search.push(path);
    // What a container's root may do, and no more (Docker's default capabilities, less mknod:
    // there is no device cgroup here): no mount, so nothing the sandbox set up can be undone.
    Command::new("setpriv")
        .args(["--bounding-set", CAPABILITIES, "--inh-caps", "-all", "--no-new-privs", "--"])
        .arg(program)
        .args(args)
        .current_dir(&spec.program.workdir)
        .env("PATH", search)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| {
            let shown = program.to_string_lossy();
            SetupError(format!("cannot start `{shown}` from {}: {e}", spec.program.workdir.display()))
        })
}

/// The capabilities the command keeps (`setpriv --bounding-set`).
const CAPABILITIES: &str = "-all,+chown,+dac_override,+fowner,+fsetid,+kill,+setgid,+setuid,+setpcap,\
+net_bind_service,+net_raw,+sys_chroot,+audit_write,+setfcap";

/// Waits for every child (orphans come to the first process of a PID namespace) until `main` ends; its status.
fn reap(main: Pid) -> i32 {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == main => return code,
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == main => return 128 + signal as i32,
            Ok(_) | Err(Errno::EINTR) => {}
            Err(_) => return SETUP_FAILED,
        }
    }
}

/// Answers each connection request with a socket connected to `port` inside, until the host hangs up.
fn answer_connections(control: &UnixStream, port: u16) {
    let server = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut request = [0u8];
    let mut reader = control;
    while matches!(reader.read(&mut request), Ok(1)) {
        if request[0] != CONNECT {
            continue;
        }
        // Well within the host's wait for the answer.
        let sent = match TcpStream::connect_timeout(&server, Duration::from_millis(500)) {
            Ok(stream) => {
                let fds = [stream.as_fd()];
                let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
                let mut ancillary = rustix::net::SendAncillaryBuffer::new(&mut space);
                ancillary.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
                let byte = [CONNECTED];
                rustix::net::sendmsg(control, &[IoSlice::new(&byte)], &mut ancillary, rustix::net::SendFlags::empty())
                    .map(drop)
                    .map_err(std::io::Error::from)
            }
            Err(_) => (&*control).write_all(&[REFUSED]),
        };
        if sent.is_err() {
            return;
        }
    }
}

/// Receives what [`answer_connections`] sent: a connected socket, or `None` when the server refused.
pub(crate) fn receive_connection(control: &impl AsFd) -> std::io::Result<Option<std::os::fd::OwnedFd>> {
    let mut byte = [0u8];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut ancillary = rustix::net::RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        control,
        &mut [IoSliceMut::new(&mut byte)],
        &mut ancillary,
        rustix::net::RecvFlags::CMSG_CLOEXEC,
    )?;
    if received.bytes == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the sandbox has exited"));
    }
    let mut fds = Vec::new();
    for message in ancillary.drain() {
        if let rustix::net::RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    Ok(if byte[0] == CONNECTED { fds.into_iter().next() } else { None })
}

fn set_up(spec: &Spec) -> Result<(), SetupError> {
    check_workdir(&spec.program.workdir).map_err(SetupError)?;
    // Read before anything is mounted: the host's mounts, the folders an image has in /run and
    // /var/log, and where the folders to hide really are (a symlink is followed on this side).
    let mounts = mounts()?;
    let credentials: Vec<PathBuf> = credentials().iter().filter_map(|c| std::fs::canonicalize(c).ok()).collect();
    let program = std::fs::canonicalize(&spec.program.dir)
        .map_err(|e| SetupError(format!("the program folder {}: {e}", spec.program.dir.display())))?;
    if let Some(hidden) = spec.hidden.iter().find(|h| program.starts_with(h) || h.starts_with(&program)) {
        return Err(SetupError(format!(
            "the program folder {} holds or is in {}, which a job must not see; keep the algorithm in the project",
            program.display(),
            hidden.display()
        )));
    }
    let skeletons: Vec<(&str, Vec<Folder>)> =
        ["run", "var/log"].into_iter().map(|dir| (dir, folders_of(&Path::new("/").join(dir)))).collect();

    // The new root is built on a tmpfs at /opt/ml (a mount point of this machine's, empty), then
    // entered with pivot_root; the tmpfs lives on as the root's writable layer.
    let stage = Path::new(STAGE);
    tmpfs(stage, 0o755, LAYER_SIZE)?;
    for layer in ["upper", "work", "root"] {
        make_dir(&stage.join(layer))?;
    }
    let root = stage.join("root");
    let copy_on_write = match overlay(Path::new("/"), &stage.join("upper"), &stage.join("work"), &root) {
        Ok(()) => true,
        // In a user namespace, overlayfs cannot take a root that has mounts under it (they are
        // locked to it): the job sees the machine read-only instead, writable only where a
        // container has its own folders (below) and in its /opt/ml.
        Err(Errno::EINVAL) if in_user_namespace() => {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            mount(Some("/"), root.as_path(), None::<&str>, flags, None::<&str>)
                .map_err(|e| SetupError::of("cannot bind the machine's root into the sandbox", e))?;
            false
        }
        Err(e) => return Err(SetupError::of("cannot lay a private writable layer over / (overlayfs)", e)),
    };
    let inside = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));

    // Each of the host's mounts is bound with those under it (in a user namespace they are locked
    // together), then each made read-only on its own.
    let mut bound: Vec<&Path> = if copy_on_write { Vec::new() } else { vec![Path::new("/")] };
    for (point, options) in &mounts {
        let layered = point == Path::new("/") && copy_on_write;
        let skip = layered || point.starts_with("/proc") || point.starts_with(STAGE);
        let target = inside(point);
        if skip || !target.exists() {
            continue;
        }
        if !bound.iter().any(|b| point.starts_with(b)) {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
            // One this process may not reach (another user's FUSE mount) is left out: the job sees
            // the empty folder under it, and its writes there land in its own layer.
            if mount(Some(point.as_path()), target.as_path(), None::<&str>, flags, None::<&str>).is_err() {
                continue;
            }
            bound.push(point);
        }
        if let Err(e) = remount_read_only(&target, options) {
            // Never left writable: hidden again, or the sandbox is not made.
            nix::mount::umount2(target.as_path(), nix::mount::MntFlags::MNT_DETACH)
                .map_err(|_| SetupError::of(format!("cannot make {} read-only", point.display()), e))?;
        }
    }
    bind(Path::new("/proc"), &inside(Path::new("/proc")), false)?;
    for path in PROC_READ_ONLY.iter().map(Path::new) {
        if inside(path).exists() {
            bind(&inside(path), &inside(path), true)?;
        }
    }
    bind(&spec.opt_ml, &inside(Path::new("/opt/ml")), false)?;
    lay_program(&spec.program, stage, &inside(&spec.program.workdir))?;
    private_dev(&inside(Path::new("/dev")))?;
    for (dir, mode, size) in PRIVATE {
        let path = inside(Path::new(dir));
        // A symlink (Debian's /var/run -> /run) is covered where it points.
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            tmpfs(&path, *mode, size)?;
        }
    }
    for (dir, folders) in skeletons {
        for folder in folders {
            let created = root.join(dir).join(&folder.name);
            if std::fs::create_dir(&created).is_ok() {
                let _ = std::fs::set_permissions(&created, std::fs::Permissions::from_mode(folder.mode));
                // Only where this process may give files away (real root); in a user namespace it stays ours.
                let _ = std::os::unix::fs::chown(&created, Some(folder.uid), Some(folder.gid));
            }
        }
    }
    let empty = stage.join("empty");
    std::fs::write(&empty, b"").map_err(|e| SetupError(format!("cannot make {}: {e}", empty.display())))?;
    for hidden in spec.hidden.iter().chain(&credentials) {
        let target = inside(hidden);
        match std::fs::symlink_metadata(&target) {
            Ok(found) if found.is_dir() => tmpfs(&target, 0o700, "1m")?,
            // A credential file: an empty one in its place.
            Ok(found) if found.is_file() => bind(&empty, &target, true)?,
            _ => {}
        }
    }

    // pivot_root(".", "."), as its manual page has it: the machine's root is stacked over the new
    // one and let go of, with no folder for it in a root that may be read-only.
    std::env::set_current_dir(&root).map_err(|e| SetupError(format!("cannot enter the sandbox's root: {e}")))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| SetupError::of("cannot enter the sandbox's root (pivot_root)", e))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
        .map_err(|e| SetupError::of("cannot let go of the machine's root", e))?;
    std::env::set_current_dir("/").map_err(|e| SetupError(format!("cannot enter the sandbox's root: {e}")))?;
    loopback_up()
}

/// Where the new root is assembled: a mount point the host side makes once ([`crate::process::sandboxed`]).
const STAGE: &str = "/opt/ml";

/// Private, empty, writable: what a container has of its own at these paths (over the root's layer,
/// so none of the host's files there, other jobs' among them, is seen).
const PRIVATE: &[(&str, u32, &str)] = &[
    ("/tmp", 0o1777, "25%"),
    ("/var/tmp", 0o1777, "25%"),
    ("/run", 0o755, "64m"),
    ("/var/run", 0o755, "64m"),
    ("/var/log", 0o755, "256m"),
    // Docker's default --shm-size.
    ("/dev/shm", 0o1777, "64m"),
];

/// The most the root's copy-on-write layer and the program's may hold, together: what a job
/// writes outside `/opt/ml` is in memory, and one job must not take all of it.
const LAYER_SIZE: &str = "25%";

/// What Docker keeps read-only of `/proc`: writing there would change the host's kernel.
const PROC_READ_ONLY: &[&str] = &["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"];

/// Where the user running sagebrush keeps credentials: hidden (empty) in the sandbox, as a container never sees them.
const CREDENTIALS: &[&str] = &[
    ".aws",
    ".ssh",
    ".docker",
    ".kube",
    ".config/gcloud",
    ".config/gh",
    ".gnupg",
    ".netrc",
    ".git-credentials",
    ".pgpass",
    ".pypirc",
    ".npmrc",
];

fn credentials() -> Vec<PathBuf> {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else { return Vec::new() };
    CREDENTIALS.iter().map(|dir| Path::new(&home).join(dir)).collect()
}

/// A folder an image has in `/run` or `/var/log`, made again (empty) in the sandbox's own.
struct Folder {
    name: PathBuf,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// The folders directly in `dir`.
fn folders_of(dir: &Path) -> Vec<Folder> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let metadata = entry.path().symlink_metadata().ok()?;
            metadata.is_dir().then(|| Folder {
                name: PathBuf::from(entry.file_name()),
                mode: metadata.mode() & 0o7777,
                uid: metadata.uid(),
                gid: metadata.gid(),
            })
        })
        .collect()
}

fn make_dir(path: &Path) -> Result<(), SetupError> {
    std::fs::create_dir_all(path).map_err(|e| SetupError(format!("cannot make {}: {e}", path.display())))
}

fn bind(source: &Path, target: &Path, read_only: bool) -> Result<(), SetupError> {
    let what = || format!("cannot bind {} on {}", source.display(), target.display());
    mount(Some(source), target, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| SetupError::of(what(), e))?;
    if read_only {
        remount_read_only(target, "nosuid,nodev,noexec").map_err(|e| SetupError::of(what(), e))?;
    }
    Ok(())
}

/// Makes a bind mount read-only, keeping the flags in `options` (a user namespace may not drop them).
fn remount_read_only(target: &Path, options: &str) -> Result<(), Errno> {
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for option in options.split(',') {
        flags |= match option {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            _ => MsFlags::empty(),
        };
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// A tmpfs of at most `size` (as tmpfs reads it: `64m`, `25%` of memory) at `target`.
fn tmpfs(target: &Path, mode: u32, size: &str) -> Result<(), SetupError> {
    let options = format!("mode={mode:o},size={size}");
    mount(Some("tmpfs"), target, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(options.as_str()))
        .map_err(|e| SetupError::of(format!("cannot mount a private tmpfs on {}", target.display()), e))
}

/// An overlayfs at `target` reading `lower`, writing to `upper`.
fn overlay(lower: &Path, upper: &Path, work: &Path, target: &Path) -> Result<(), Errno> {
    let mut options = format!("lowerdir={},upperdir={},workdir={}", lower.display(), upper.display(), work.display());
    if in_user_namespace() {
        // There overlayfs keeps its own attributes as user.* xattrs: trusted.* are the real root's.
        options.push_str(",userxattr");
    }
    // No device node or set-user-id program written there works: no disk is reached through it.
    mount(Some("overlay"), target, Some("overlay"), MsFlags::MS_NODEV | MsFlags::MS_NOSUID, Some(options.as_str()))
}

/// The program folder at its working directory (`target`, in the new root): read from the folder,
/// written to the stage's memory, as a container's layer takes writes to its files.
fn lay_program(program: &Program, stage: &Path, target: &Path) -> Result<(), SetupError> {
    program.dir.to_str().filter(|d| !d.contains([',', ':', '\\'])).ok_or_else(|| {
        SetupError(format!("the program folder {} has a `,`, `:` or `\\` in its path; move it", program.dir.display()))
    })?;
    if !program.dir.is_dir() {
        return Err(SetupError(format!("the program folder {} does not exist", program.dir.display())));
    }
    std::fs::create_dir_all(target).map_err(|e| {
        let workdir = program.workdir.display();
        SetupError(format!(
            "cannot make {workdir} for the program ({e}); with the machine read-only (a user namespace), create it once with `sudo mkdir -p {workdir}`"
        ))
    })?;
    let (upper, work) = (stage.join("program-upper"), stage.join("program-work"));
    make_dir(&upper)?;
    make_dir(&work)?;
    overlay(&program.dir, &upper, &work, target).map_err(|e| {
        SetupError::of(format!("cannot lay {} at {} (overlayfs)", program.dir.display(), program.workdir.display()), e)
    })
}

/// A `/dev` of the sandbox's own, as a container has: the harmless devices bound from the
/// machine's, its own pseudo-terminals, and no disk, so nothing of the machine is reached through
/// a device node.
fn private_dev(dev: &Path) -> Result<(), SetupError> {
    let host = Path::new("/dev");
    tmpfs(dev, 0o755, "1m")?;
    for device in ["null", "zero", "full", "random", "urandom", "tty"] {
        let (source, target) = (host.join(device), dev.join(device));
        if source.exists() {
            std::fs::write(&target, b"").map_err(|e| SetupError(format!("cannot make {}: {e}", target.display())))?;
            bind(&source, &target, false)?;
        }
    }
    for dir in ["pts", "shm", "mqueue"] {
        make_dir(&dev.join(dir))?;
    }
    // Pseudo-terminals of its own, where the kernel allows a new instance; none is needed to run.
    let pts = dev.join("pts");
    if mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620"),
    )
    .is_ok()
    {
        let _ = std::os::unix::fs::symlink("pts/ptmx", dev.join("ptmx"));
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let _ = std::os::unix::fs::symlink(to, dev.join(link));
    }
    Ok(())
}

/// Whether this process runs in a user namespace of its own (the host's maps every id to itself).
fn in_user_namespace() -> bool {
    let map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().take(3).collect();
    fields != ["0", "0", "4294967295"]
}

/// Every mount point of this namespace with its per-mount options, parents first.
fn mounts() -> Result<Vec<(PathBuf, String)>, SetupError> {
    let table = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| SetupError(format!("cannot read /proc/self/mountinfo: {e}")))?;
    Ok(table.lines().filter_map(mount_point).map(|(point, options)| (point, options.to_owned())).collect())
}

/// A mountinfo line's mount point (octal escapes undone) and per-mount options.
fn mount_point(line: &str) -> Option<(PathBuf, &str)> {
    let mut fields = line.split(' ');
    let point = fields.nth(4)?;
    let options = fields.next()?;
    let mut bytes = Vec::with_capacity(point.len());
    let raw = point.as_bytes();
    let mut i = 0;
    while i < raw.len() {
        let escaped = raw.get(i + 1..i + 4).filter(|d| raw[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match escaped {
            Some(digits) => {
                bytes.push(digits.iter().fold(0u8, |n, d| n.wrapping_mul(8).wrapping_add(d - b'0')));
                i += 4;
            }
            None => {
                bytes.push(raw[i]);
                i += 1;
            }
        }
    }
    Some((PathBuf::from(<OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes)), options))
}

/// A new network namespace's loopback starts down: without it nothing can connect to the server.
fn loopback_up() -> Result<(), SetupError> {
    let output = Command::new("ip").args(["link", "set", "lo", "up"]).stdin(Stdio::null()).output().map_err(|e| {
        SetupError(format!(
            "cannot run `ip link set lo up` ({e}); the process runtime needs iproute2's `ip` to serve: install iproute2"
        ))
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SetupError(format!(
            "`ip link set lo up` failed in the instance's network namespace: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mount_point_is_read_with_its_escapes_undone() {
        let line = r"62 47 0:6 / /mnt/with\040space rw,nosuid,relatime - tmpfs tmpfs rw";
        assert_eq!(mount_point(line), Some((PathBuf::from("/mnt/with space"), "rw,nosuid,relatime")));
        assert_eq!(mount_point("too short"), None);
    }

    #[test]
    fn the_spec_is_the_command_line_of_sagebrush_sandbox() {
        let spec = Spec {
            opt_ml: "/h/opt_ml".into(),
            program: Program { dir: "/p/decision_trees".into(), workdir: DEFAULT_WORKDIR.into() },
            serve_port: Some(8080),
            hidden: vec!["/h".into()],
            command: vec!["serve".into()],
        };
        let args: Vec<String> = spec.to_args().into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(
            args,
            [
                "sandbox",
                "--opt-ml",
                "/h/opt_ml",
                "--program",
                "/p/decision_trees",
                "--workdir",
                "/opt/program",
                "--serve-port",
                "8080",
                "--hide",
                "/h",
                "--",
                "serve"
            ]
        );
    }
}
