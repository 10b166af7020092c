//! Containers through the Docker Engine API (bollard): build, push, `<image> train`, `<image> serve`, clean-up by label.
//!
//! The connection is the one the `docker` CLI would use (`DOCKER_HOST`, else the local
//! socket). Every container carries the labels of its home and process, so whatever a
//! crashed sagebrush left behind is found and removed by the next one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, PushImageOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures::{Stream, StreamExt};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::Error;

/// Every container sagebrush starts carries this label, valued with the home directory it belongs to.
pub const HOME_LABEL: &str = "dev.sagebrush.home";
/// And this one, valued with the identity of the sagebrush process that started it.
pub const PROCESS_LABEL: &str = "dev.sagebrush.process";
/// The port a SageMaker serving container listens on.
const SERVING_PORT: &str = "8080/tcp";

pub use crate::instance::{DEFAULT_INSTANCE_TYPE, INSTANCE_TYPES, Labels, Limits, limits};

/// A container to create: a job's `train` or an instance's `serve`.
#[derive(Debug, Clone)]
pub struct ContainerSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    /// `train` or `serve`, SageMaker's argument to the image.
    pub command: &'a str,
    pub labels: &'a Labels,
    /// Bound on `/opt/ml`.
    pub opt_ml: &'a Path,
    pub limits: Limits,
    pub env: &'a [(&'a str, &'a str)],
    /// Publish port 8080 on a free 127.0.0.1 port.
    pub publish: bool,
}

/// A container name no other job or instance has.
pub fn unique_name(prefix: &str) -> String {
    let clean: String = prefix.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("sagebrush-{clean}-{}", crate::unique_suffix())
}

fn client() -> Result<&'static Docker, Error> {
    static CLIENT: OnceLock<Result<Docker, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| Docker::connect_with_local_defaults().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| Error::Docker(format!("cannot connect to the Docker Engine: {e}")))
}

fn api_error(what: &str) -> impl FnOnce(bollard::errors::Error) -> Error + '_ {
    move |e| Error::Docker(format!("{what}: {}", describe(&e)))
}

/// The Engine's own message rather than bollard's wrapping of it.
fn describe(error: &bollard::errors::Error) -> String {
    match error {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

/// Checks that the engine answers, with what to do when it does not.
pub async fn check_engine() -> Result<(), Error> {
    let answered = match client() {
        Ok(docker) => docker.ping().await.map_err(|e| describe(&e)),
        Err(e) => Err(e.to_string()),
    };
    answered.map(|_| ()).map_err(|e| {
        Error::Docker(format!("the Docker Engine is not reachable ({e}); start it (systemctl start docker) and retry"))
    })
}

/// Makes sure a local image with this reference exists, pulling it when it does not.
pub async fn ensure_image(image: &str) -> Result<(), Error> {
    let docker = client()?;
    if docker.inspect_image(image).await.is_ok() {
        return Ok(());
    }
    let options = CreateImageOptionsBuilder::default().from_image(image).build();
    let mut pull = docker.create_image(Some(options), None, None);
    while let Some(progress) = pull.next().await {
        if let Err(e) = progress {
            return Err(Error::Docker(format!(
                "image `{image}` is neither on this machine nor pullable: {}",
                describe(&e)
            )));
        }
    }
    Ok(())
}

/// An image's size in bytes and its repository digests (`<repository>@sha256:...`, one per registry it was pushed to).
pub async fn inspect_image(image: &str) -> Result<(u64, Vec<String>), Error> {
    let inspected = client()?.inspect_image(image).await.map_err(api_error(&format!("inspecting image {image}")))?;
    let size = inspected.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0);
    Ok((size, inspected.repo_digests.unwrap_or_default()))
}

/// Removes the tag `image` from the Docker Engine (and the image, when no other tag names it);
/// an image that is already gone is not an error.
pub async fn remove_image(image: &str) -> Result<(), Error> {
    let removed = client()?.remove_image(image, None::<bollard::query_parameters::RemoveImageOptions>, None).await;
    match removed {
        Ok(_) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(e) => Err(api_error(&format!("removing image {image}"))(e)),
    }
}

/// Builds `context_dir` (with its Dockerfile) as `tag`, writing the build output to `log`.
pub async fn build(context_dir: &Path, tag: &str, log: &mut (impl AsyncWrite + Unpin)) -> Result<(), Error> {
    let context = tokio::task::spawn_blocking({
        let dir = context_dir.to_owned();
        move || tar_directory(&dir)
    })
    .await
    .map_err(|e| Error::Docker(format!("packing the build context: {e}")))??;
    let options = BuildImageOptionsBuilder::default().t(tag).rm(true).forcerm(true).build();
    let mut stream = client()?.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.map_err(api_error("the image did not build"))?;
        if let Some(text) = info.stream.or(info.status) {
            write_log(log, text.as_bytes()).await;
        }
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_default();
            write_log(log, format!("{message}\n").as_bytes()).await;
            return Err(Error::Docker(format!("the image did not build: {message}")));
        }
    }
    Ok(())
}

/// A registry's login for one push.
pub struct Login<'a> {
    pub server: &'a str,
    pub username: &'a str,
    pub password: &'a str,
}

/// Pushes `repository:tag`, logged in when `login` says so, writing progress to `log`.
pub async fn push(
    repository: &str,
    tag: &str,
    login: Option<Login<'_>>,
    log: &mut (impl AsyncWrite + Unpin),
) -> Result<(), Error> {
    let options = PushImageOptionsBuilder::default().tag(tag).build();
    // The Engine wants an auth header even for a registry without auth.
    let credentials = login.map_or_else(DockerCredentials::default, |login| DockerCredentials {
        username: Some(login.username.to_owned()),
        password: Some(login.password.to_owned()),
        serveraddress: Some(login.server.to_owned()),
        ..Default::default()
    });
    let mut stream = client()?.push_image(repository, Some(options), Some(credentials));
    while let Some(item) = stream.next().await {
        let info = item.map_err(api_error(&format!("pushing {repository}:{tag}")))?;
        if let Some(detail) = info.error_detail {
            let message = detail.message.unwrap_or_default();
            return Err(Error::Docker(format!("pushing {repository}:{tag}: {message}")));
        }
        if let Some(status) = info.status
            && info.progress_detail.is_none_or(|p| p.current.is_none())
        {
            write_log(log, format!("{status}\n").as_bytes()).await;
        }
    }
    Ok(())
}

/// Creates and starts a container; on failure nothing is left behind.
pub async fn start(spec: &ContainerSpec<'_>) -> Result<(), Error> {
    let docker = client()?;
    let cpus = spec.limits.cpus.min(std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64));
    let mut labels = HashMap::new();
    labels.insert(HOME_LABEL.to_owned(), spec.labels.home.clone());
    labels.insert(PROCESS_LABEL.to_owned(), spec.labels.process.clone());
    let port_bindings = spec.publish.then(|| {
        let binding = PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) };
        HashMap::from([(SERVING_PORT.to_owned(), Some(vec![binding]))])
    });
    let body = ContainerCreateBody {
        image: Some(spec.image.to_owned()),
        cmd: Some(vec![spec.command.to_owned()]),
        env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels),
        exposed_ports: spec.publish.then(|| vec![SERVING_PORT.to_owned()]),
        host_config: Some(HostConfig {
            binds: Some(vec![format!("{}:/opt/ml", spec.opt_ml.display())]),
            nano_cpus: Some((cpus * 1e9) as i64),
            memory: Some(i64::try_from(spec.limits.memory_mib * 1024 * 1024).unwrap_or(i64::MAX)),
            port_bindings,
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(spec.name).build();
    let what = format!("`{} {}`", spec.image, spec.command);
    docker.create_container(Some(options), body).await.map_err(api_error(&format!("creating {what}")))?;
    if let Err(e) = docker.start_container(spec.name, None).await {
        remove(spec.name).await;
        return Err(api_error(&format!("starting {what}"))(e));
    }
    Ok(())
}

/// Where a started container serves: the 127.0.0.1 port its 8080 is published on, and its own
/// address on its network (`<ip>:8080`, reached with no proxy in between) if it has one.
pub async fn serving_addresses(name: &str) -> Result<(u16, Option<String>), Error> {
    let inspected = client()?.inspect_container(name, None).await.map_err(api_error(&format!("inspecting {name}")))?;
    let settings = inspected.network_settings.unwrap_or_default();
    let published = settings
        .ports
        .and_then(|mut ports| ports.remove(SERVING_PORT))
        .flatten()
        .into_iter()
        .flatten()
        .filter(|b| b.host_ip.as_deref() == Some("127.0.0.1"))
        .find_map(|b| b.host_port.and_then(|p| p.parse().ok()))
        .ok_or_else(|| Error::Docker(format!("container {name} published no loopback port for 8080")))?;
    let direct = direct_address(settings.networks);
    Ok((published, direct))
}

/// Whether the container is running and still serves at `address`, the direct address
/// [`serving_addresses`] gave for it. Docker never moves a running container to another address, and
/// sagebrush never restarts a stopped one, so a yes means it has held `address` since it started.
pub async fn holds_address(name: &str, address: &str) -> bool {
    let Ok(client) = client() else { return false };
    let Ok(inspected) = client.inspect_container(name, None).await else { return false };
    let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
    running && direct_address(inspected.network_settings.and_then(|n| n.networks)).as_deref() == Some(address)
}

/// `<ip>:8080` on the container's (IPv4) network, if it has one.
fn direct_address(networks: Option<HashMap<String, bollard::models::EndpointSettings>>) -> Option<String> {
    networks
        .unwrap_or_default()
        .into_values()
        .filter_map(|n| n.ip_address)
        .find(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
        .map(|ip| format!("{ip}:8080"))
}

/// The container's output (stdout and stderr), followed until it stops, as raw chunks.
pub fn follow_logs(name: &str) -> Result<impl Stream<Item = bytes::Bytes> + Send + 'static, Error> {
    let options = LogsOptionsBuilder::default().follow(true).stdout(true).stderr(true).build();
    let stream = client()?.logs(name, Some(options));
    Ok(stream.take_while(|item| std::future::ready(item.is_ok())).filter_map(|item| async move {
        match item {
            Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                Some(message)
            }
            _ => None,
        }
    }))
}

/// Waits for a container to stop; its exit code.
pub async fn wait(name: &str) -> Result<i64, Error> {
    let mut waited = client()?.wait_container(name, None);
    match waited.next().await {
        Some(Ok(response)) => Ok(response.status_code),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => Ok(code),
        Some(Err(e)) => Err(api_error(&format!("waiting for {name}"))(e)),
        None => Err(Error::Docker(format!("waiting for {name}: the Engine closed the connection"))),
    }
}

/// Stops a container as SageMaker does: SIGTERM, then SIGKILL after `grace`.
pub async fn stop(name: &str, grace: Duration) {
    let seconds = i32::try_from(grace.as_secs()).unwrap_or(30);
    if let Ok(docker) = client() {
        let _ = docker.stop_container(name, Some(StopContainerOptionsBuilder::default().t(seconds).build())).await;
    }
}

/// Removes a container whether or not it runs; a container that is already gone is not an error.
pub async fn remove(name: &str) {
    if let Ok(docker) = client() {
        let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
        let _ = docker.remove_container(name, Some(options)).await;
    }
}

/// Starts removing a container without waiting, for `Drop`; what this misses (no runtime, the process
/// exiting first) the process's shutdown or the next start-up removes by label.
pub fn remove_detached(name: &str) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let name = name.to_owned();
        runtime.spawn(async move { remove(&name).await });
    }
}

/// Removes the containers of `home` for which `keep(process label)` is false; returns their names.
pub async fn remove_orphans(home: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<String>, Error> {
    let filters = HashMap::from([("label", vec![format!("{HOME_LABEL}={home}")])]);
    let options = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let listed = client()?.list_containers(Some(options)).await.map_err(api_error("listing containers"))?;
    let mut removed = Vec::new();
    for container in listed {
        let process = container.labels.as_ref().and_then(|l| l.get(PROCESS_LABEL)).map_or("", String::as_str);
        let Some(name) = container.names.as_ref().and_then(|n| n.first()) else { continue };
        let name = name.trim_start_matches('/');
        if !keep(process) {
            remove(name).await;
            removed.push(name.to_owned());
        }
    }
    Ok(removed)
}

/// A created container's file system as a tar stream (for the SBOM).
pub fn export(name: &str) -> Result<impl Stream<Item = Result<bytes::Bytes, Error>> + Send + 'static, Error> {
    let what = format!("exporting {name}");
    Ok(client()?.export_container(name).map(move |item| item.map_err(|e| Error::Docker(format!("{what}: {e}")))))
}

/// Creates (without starting) a container of `image`, to read its file system.
pub async fn create_stopped(name: &str, image: &str, labels: &Labels) -> Result<(), Error> {
    let body = ContainerCreateBody {
        image: Some(image.to_owned()),
        // An imported image may have no command; this one never runs.
        cmd: Some(vec!["true".to_owned()]),
        labels: Some(HashMap::from([
            (HOME_LABEL.to_owned(), labels.home.clone()),
            (PROCESS_LABEL.to_owned(), labels.process.clone()),
        ])),
        ..Default::default()
    };
    let options = CreateContainerOptionsBuilder::default().name(name).build();
    client()?
        .create_container(Some(options), body)
        .await
        .map_err(api_error(&format!("creating a container of {image}")))?;
    Ok(())
}

fn tar_directory(dir: &Path) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| Error::Io { path: dir.display().to_string(), source: e };
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    builder.append_dir_all(".", dir).map_err(io)?;
    builder.into_inner().map_err(io)
}

async fn write_log(log: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) {
    // A full disk must not fail the build; the log is for people.
    let _ = log.write_all(bytes).await;
}
