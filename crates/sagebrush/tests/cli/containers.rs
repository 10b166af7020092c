//! Containers for real: SageMaker bring-your-own images built, pushed, trained and served through the Docker Engine.
//!
//! These tests need the Docker Engine and fail when it is missing. The base image is made
//! offline by examples/scikit-byo/base/offline-base.sh (test.sh runs it first).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Sandbox, SteadyLoad, client, endpoint, payload, repo_root, text, wait_until};

const BASE: &str = "sagebrush/scikit-base:bookworm";

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("the docker CLI is installed");
    assert!(output.status.success(), "docker {args:?}: {}", text(&output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn ensure_base_image() {
    let script = repo_root().join("examples/scikit-byo/base/offline-base.sh");
    let output = Command::new("bash").arg(script).output().unwrap();
    assert!(output.status.success(), "the base image could not be made: {}", text(&output));
}

/// Builds `tag` from the workshop-style container, with `extra` files added over it.
pub(crate) fn build_image(sandbox: &Sandbox, tag: &str, extra: &[(&str, &str)]) {
    ensure_base_image();
    let context = sandbox.dir.path().join(format!("image-{}", tag.replace(['/', ':'], "-")));
    std::fs::create_dir_all(&context).unwrap();
    let program = repo_root().join("examples/scikit-byo/container/decision_trees");
    copy_tree(&program, &context.join("decision_trees"));
    let mut dockerfile =
        format!("FROM {BASE}\nENV PATH=/opt/program:$PATH\nCOPY decision_trees /opt/program\nWORKDIR /opt/program\n");
    for (name, content) in extra {
        std::fs::write(context.join(name), content).unwrap();
        std::fs::set_permissions(context.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
        dockerfile.push_str(&format!("COPY {name} /opt/program/{name}\n"));
    }
    std::fs::write(context.join("Dockerfile"), dockerfile).unwrap();
    let output = Command::new("docker")
        .args(["build", "--quiet", "--tag", tag])
        .arg(&context)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Names of the containers sagebrush runs for this sandbox's home.
fn containers(sandbox: &Sandbox) -> Vec<String> {
    let filter = format!("label=dev.sagebrush.home={}", sandbox.home.display());
    docker(&["ps", "--all", "--filter", &filter, "--format", "{{.Names}}"]).lines().map(str::to_owned).collect()
}

/// A project folder with the iris training data and no pipeline yet.
fn byo_project(sandbox: &Sandbox, name: &str) -> std::path::PathBuf {
    let project = sandbox.dir.path().join(name);
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::copy(repo_root().join("examples/iris/data/train.csv"), project.join("data/train.csv")).unwrap();
    project
}

fn image_pipeline(name: &str, image: &str, hyperparameters: &str, startup_timeout: &str) -> String {
    format!(
        r#"[pipeline]
name = "{name}"
[algorithm]
image = "{image}"
[[stage]]
kind = "train"
channels = {{ training = "data/train.csv" }}
hyperparameters = {{ {hyperparameters} }}
max_runtime = "5m"
metrics = [{{ name = "train:accuracy", regex = "train_accuracy=([0-9.]+)" }}]
[[stage]]
kind = "deploy"
endpoint = "{name}-prod"
startup_timeout = "{startup_timeout}"
"#
    )
}

#[test]
fn scikit_byo_goes_from_dockerfile_to_prod_and_survives_a_killed_server() {
    ensure_base_image();
    let sandbox = Sandbox::new();
    let project = sandbox.project("scikit-byo", "scikit-byo");
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["server"]);
    let first = sandbox.run(&["run", dir]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());

    let response = served.invoke("scikit-byo-prod", "text/csv", payload());
    assert_eq!(response.status(), 200);
    let body = response.text().unwrap();
    assert_eq!(body.lines().count(), 29, "{body}");
    assert!(body.lines().all(|l| ["setosa", "versicolor", "virginica"].contains(&l)), "{body}");
    // The workshop container's own 415 comes back as SageMaker's ModelError, with the container's status.
    let refused = served.invoke("scikit-byo-prod", "application/json", "{}");
    assert_eq!(refused.status(), 424);
    assert_eq!(refused.json::<serde_json::Value>().unwrap()["OriginalStatusCode"], 415);
    let models = sandbox.json(&["models", "scikit-byo", "--json"]);
    let algorithm = models[0]["lineage"]["algorithm"].as_str().unwrap_or_else(|| panic!("{models:#}")).to_owned();
    assert!(algorithm.starts_with("image:127.0.0.1:") && algorithm.contains("/scikit-byo@sha256:"), "{models:#}");
    assert_eq!(containers(&sandbox).len(), 2, "one container per endpoint");

    // Prod is updated in place under load; the second build reuses the layer cache and the registry's layers.
    let load = SteadyLoad::start(&served, "scikit-byo-prod");
    let second = sandbox.run(&["run", dir, "-p", "max_leaf_nodes=3"]);
    let (ok, failed) = load.finish();
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(failed, 0, "requests failed during the update ({ok} succeeded)");
    assert_eq!(endpoint(&sandbox, "scikit-byo-prod")["model_version"], 2);
    wait_until(Duration::from_secs(30), "the replaced container to be removed", || {
        (containers(&sandbox).len() == 2).then_some(())
    });

    // The image's SBOM is in the lineage, and a gate on it stops a run before it trains.
    let image = &sandbox.json(&["models", "scikit-byo", "--json"])[1]["lineage"]["image"];
    assert!(image["packages"].as_u64().unwrap() > 100, "{image:#}");
    let sbom_path = image["sbom_uri"].as_str().unwrap().strip_prefix("file://").unwrap().to_owned();
    let sbom: serde_json::Value = serde_json::from_slice(&std::fs::read(sbom_path).unwrap()).unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    let purls: Vec<&str> = sbom["components"].as_array().unwrap().iter().filter_map(|c| c["purl"].as_str()).collect();
    assert!(purls.iter().any(|p| p.starts_with("pkg:deb/debian/python3-sklearn@")), "{purls:?}");
    for (param, expected) in [
        ("denied_package=python3-flask", "the image has the denied package python3-flask"),
        ("max_image_mb=100", "image:size_mb = "),
    ] {
        let denied = sandbox.run(&["run", dir, "-p", param]);
        assert_eq!(denied.status.code(), Some(1), "{}", text(&denied));
        assert!(text(&denied).contains(expected), "{expected:?} not in {}", text(&denied));
        assert!(text(&denied).contains("train        skipped"), "{}", text(&denied));
    }
    assert_eq!(endpoint(&sandbox, "scikit-byo-prod")["model_version"], 2);

    // kill -9: the containers outlive the server, and the next start removes them and brings the endpoints back.
    let before = containers(&sandbox);
    served.kill();
    assert_eq!(containers(&sandbox), before, "containers outlive a killed server");
    let served = sandbox.serve(&["server"]);
    let response = served.invoke("scikit-byo-prod", "text/csv", payload());
    assert_eq!(response.status(), 200, "{}", served.output());
    assert_eq!(response.text().unwrap().lines().count(), 29);
    let after = containers(&sandbox);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|name| !before.contains(name)), "orphans left: {before:?} -> {after:?}");
}

#[test]
fn container_failures_are_clear_and_leave_prod_alone() {
    let sandbox = Sandbox::new();
    let tag = format!("sagebrush-test/scikit:{}", std::process::id());
    build_image(&sandbox, &tag, &[]);
    let silent = format!("sagebrush-test/silent:{}", std::process::id());
    build_image(&sandbox, &silent, &[("serve", "#!/bin/sh\necho never listening\nexec sleep 600\n")]);
    let project = byo_project(&sandbox, "byo");
    let file = project.join("sagebrush.toml");
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["server"]);
    std::fs::write(&file, image_pipeline("byo", &tag, "max_leaf_nodes = \"5\"", "60s")).unwrap();
    let first = sandbox.run(&["run", dir]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());

    let cases = [
        (image_pipeline("byo", &tag, "max_leaf_nodes = \"many\"", "60s"), "Exception during training: invalid literal"),
        (image_pipeline("byo", "sagebrush-test/does-not-exist:1", "", "60s"), "sagebrush-test/does-not-exist:1"),
        (image_pipeline("byo", &silent, "", "3s"), "did not answer GET /ping with 200 within 3s"),
    ];
    for (number, (pipeline, expected)) in (2..).zip(cases) {
        std::fs::write(&file, pipeline).unwrap();
        let output = sandbox.run(&["run", dir]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output));
        let shown = sandbox.json(&["show", "byo", &number.to_string(), "--json"]);
        let reason = shown["run"]["reason"].as_str().unwrap_or_default();
        assert!(reason.contains(expected), "run {number}: {expected:?} not in {reason:?}");
        assert_eq!(endpoint(&sandbox, "byo-prod")["model_version"], 1);
        assert_eq!(served.invoke("byo-prod", "text/csv", payload()).text().unwrap().lines().count(), 29);
    }
    // The silent container was removed when its deadline passed; only prod's container runs.
    assert_eq!(containers(&sandbox).len(), 1, "{:?}", containers(&sandbox));

    // A Dockerfile that does not build fails the build stage with its log.
    let context = project.join("container");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), format!("FROM {BASE}\nRUN echo about to fail && exit 3\n")).unwrap();
    let with_build = image_pipeline("byo", "byo", "", "60s").replace(
        "[[stage]]\nkind = \"train\"",
        "[[stage]]\nkind = \"build\"\ncontext = \"container\"\n[[stage]]\nkind = \"train\"",
    );
    std::fs::write(&file, with_build).unwrap();
    let output = sandbox.run(&["run", dir]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = sandbox.json(&["show", "byo", "5", "--json"]);
    assert!(shown["run"]["reason"].as_str().unwrap().contains("the image did not build"), "{shown:#}");
    let log = sandbox.run(&["logs", "byo", "5", "--stage", "build"]);
    assert!(String::from_utf8_lossy(&log.stdout).contains("about to fail"), "{}", text(&log));
    assert_eq!(endpoint(&sandbox, "byo-prod")["model_version"], 1);
    let _ = Command::new("docker").args(["rmi", "--force", &tag, &silent]).output();
}

/// examples/iris as `boxed`, with the built-in algorithm in its FROM scratch image.
fn boxed_project(sandbox: &Sandbox) -> std::path::PathBuf {
    let project = sandbox.project("iris", "boxed");
    let file = project.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let boxed = pipeline.replace("builtin = \"decision-tree\"", "builtin = \"decision-tree\"\ncontainer = true");
    std::fs::write(&file, boxed).unwrap();
    project
}

#[test]
fn the_builtin_algorithm_runs_in_its_scratch_image() {
    let sandbox = Sandbox::new();
    let project = boxed_project(&sandbox);
    let served = sandbox.serve(&["server"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());

    let models = sandbox.json(&["models", "boxed", "--json"]);
    let algorithm = models[0]["lineage"]["algorithm"].as_str().unwrap_or_else(|| panic!("{models:#}")).to_owned();
    let image = algorithm.strip_prefix("image:").unwrap_or_else(|| panic!("not an image: {models:#}"));
    assert!(image.starts_with("sagebrush/builtin:"), "{image}");
    assert_eq!(containers(&sandbox).len(), 2, "test and prod each run a container");
    let body = served.invoke("boxed-prod", "text/csv", payload()).text().unwrap();
    assert_eq!(body.lines().count(), 29, "{body}");
    assert!(body.lines().all(|l| ["setosa", "versicolor", "virginica"].contains(&l)), "{body}");
    // FROM scratch: the binary and the few libraries it loads, nothing else.
    let layers = docker(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", image]);
    assert_eq!(layers, "1", "{image} has one layer");
    let size: u64 = docker(&["image", "inspect", "--format", "{{.Size}}", image]).parse().unwrap();
    // The `aws` build's binary carries the SageMaker client (about 30 MiB stripped).
    let limit_mib = if cfg!(feature = "aws") { 96 } else { 64 };
    assert!(size < limit_mib * 1024 * 1024, "{image} is {size} bytes");
}

/// Answers every request with `impostor`, on port 8080.
const IMPOSTOR: &str = r#"
import http.server
class Impostor(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "9")
        self.end_headers()
        self.wfile.write(b"impostor\n")
http.server.HTTPServer(("", 8080), Impostor).serve_forever()
"#;

/// Removes the named containers when dropped, however the test ends.
struct Removed(Vec<String>);

impl Drop for Removed {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("docker").args(["rm", "--force", name]).output();
        }
    }
}

fn address(container: &str) -> String {
    docker(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container])
}

#[test]
fn a_stopped_containers_address_given_to_another_container_gets_none_of_its_requests() {
    ensure_base_image();
    let sandbox = Sandbox::new();
    let project = boxed_project(&sandbox);
    // No health check in the test's time: it is about the requests the dead instance still gets.
    let served = sandbox.serve(&["server", "--health-interval", "3600"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());
    let mut impostors = Removed(Vec::new());
    // Docker gives a freed address to the next container started on this Engine, which may be
    // another test's; then the endpoint gets a fresh instance and the test tries again.
    for attempt in 0..5 {
        let prod = containers(&sandbox).into_iter().find(|c| c.contains("boxed-prod")).expect("a prod container");
        let ip = address(&prod);
        assert_eq!(served.invoke("boxed-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 200);
        docker(&["kill", &prod]);
        let name = format!("sagebrush-test-impostor-{}-{attempt}", std::process::id());
        docker(&["run", "--detach", "--name", &name, BASE, "python3", "-c", IMPOSTOR]);
        impostors.0.push(name.clone());
        if address(&name) != ip {
            let deploy = sandbox.run(&["deploy", "boxed-prod", "boxed", "--model-version", "1"]);
            assert!(deploy.status.success(), "{}", text(&deploy));
            continue;
        }
        let at_the_address = format!("http://{ip}:8080/invocations");
        wait_until(Duration::from_secs(30), "the impostor to answer at the dead instance's address", || {
            let answer = client().post(&at_the_address).body("5.1,3.5,1.4,0.2\n").send().ok()?;
            (answer.text().ok()? == "impostor\n").then_some(())
        });
        for _ in 0..20 {
            let answer = served.invoke("boxed-prod", "text/csv", "5.1,3.5,1.4,0.2\n");
            let status = answer.status();
            let body = answer.text().unwrap();
            assert!(!body.contains("impostor"), "the impostor at {ip} answered for boxed-prod");
            assert_eq!(status, 424, "{body}");
            assert!(body.contains("no longer holds this address"), "{body}");
        }
        return;
    }
    panic!("in 5 tries, Docker never gave the killed instance's address to the next container");
}

#[test]
fn a_dead_instance_is_replaced_while_the_other_serves() {
    let sandbox = Sandbox::new();
    let tag = format!("sagebrush-test/pair:{}", std::process::id());
    build_image(&sandbox, &tag, &[]);
    let project = byo_project(&sandbox, "pair");
    let pipeline = image_pipeline("pair", &tag, "", "60s") + "instances = 2\ninstance_type = \"ml.t3.medium\"\n";
    std::fs::write(project.join("sagebrush.toml"), pipeline).unwrap();
    let served = sandbox.serve(&["server", "--health-interval", "0.5"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());
    let first = containers(&sandbox);
    assert_eq!(first.len(), 2, "two instances: {first:?}");
    assert_eq!(endpoint(&sandbox, "pair-prod")["instances"], 2);
    let memory = docker(&["inspect", "--format", "{{.HostConfig.Memory}}", &first[0]]);
    assert_eq!(memory, (4096u64 * 1024 * 1024).to_string(), "ml.t3.medium has 4 GiB");

    let load = SteadyLoad::start(&served, "pair-prod");
    docker(&["kill", &first[0]]);
    let now = wait_until(Duration::from_secs(60), "a new instance in place of the killed one", || {
        let now = containers(&sandbox);
        (now.len() == 2 && !now.contains(&first[0]) && served.output().contains("replaced by an instance"))
            .then_some(now)
    });
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "requests failed while an instance died ({ok} succeeded)\n{}", served.output());
    assert!(now.contains(&first[1]), "the healthy instance is kept: {first:?} -> {now:?}");
    // What the API shows of them: two instances, both answering their pings.
    let shown = endpoint(&sandbox, "pair-prod");
    let health = shown["variants"][0]["instance_health"].as_array().cloned().unwrap_or_default();
    assert_eq!(health.len(), 2, "{shown:#}");
    assert!(health.iter().all(|i| i["health"] == "healthy" && i["checked_ms"].is_u64()), "{shown:#}");
    assert_eq!(served.invoke("pair-prod", "text/csv", payload()).text().unwrap().lines().count(), 29);
    let _ = Command::new("docker").args(["rmi", "--force", &tag]).output();
}

#[test]
fn concurrent_container_jobs_see_only_their_own_opt_ml() {
    let sandbox = Sandbox::new();
    let tag = format!("sagebrush-test/peek:{}", std::process::id());
    // Long enough for the test to see both jobs running at once.
    let peek = "#!/bin/sh\nsleep 3\nls /opt/ml/input/data/training > /opt/ml/model/seen.txt\necho train_accuracy=1.0\n";
    build_image(&sandbox, &tag, &[("train", peek)]);
    let mut children = Vec::new();
    for name in ["left", "right"] {
        let project = sandbox.dir.path().join(name);
        std::fs::create_dir_all(project.join("data")).unwrap();
        std::fs::write(project.join(format!("data/{name}-only.csv")), "a,1\n").unwrap();
        let pipeline = format!(
            "[pipeline]\nname = \"{name}\"\n[algorithm]\nimage = \"{tag}\"\n[[stage]]\nkind = \"train\"\nchannels = {{ training = \"data/{name}-only.csv\" }}\nmax_runtime = \"2m\"\n"
        );
        std::fs::write(project.join("sagebrush.toml"), pipeline).unwrap();
        let child = sandbox
            .command(&["run", project.to_str().unwrap()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        children.push(child);
    }
    wait_until(Duration::from_secs(60), "both training containers to run at once", || {
        (containers(&sandbox).len() == 2).then_some(())
    });
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", text(&output));
    }
    for name in ["left", "right"] {
        let archive = sandbox.home.join(format!("artifacts/{name}-1/output/model.tar.gz"));
        let unpacked = sandbox.dir.path().join(format!("{name}-model"));
        std::fs::create_dir_all(&unpacked).unwrap();
        let tar = Command::new("tar").arg("-xzf").arg(&archive).arg("-C").arg(&unpacked).output().unwrap();
        assert!(tar.status.success(), "{}", text(&tar));
        assert_eq!(std::fs::read_to_string(unpacked.join("seen.txt")).unwrap().trim(), format!("{name}-only.csv"));
    }
    assert!(containers(&sandbox).is_empty(), "training containers are removed when their job ends");
    let _ = Command::new("docker").args(["rmi", "--force", &tag]).output();
}

/// SageMaker's multi-model container API, small: models are loaded from `<url>/answer` and answer with it.
const MULTI_MODEL_SERVE: &str = r#"#!/usr/bin/env python3
import json, os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
models = {}
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def reply(self, code, body, content_type="text/csv"):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/ping":
            self.reply(200, b"ok\n")
        elif self.path == "/models":
            self.reply(200, json.dumps({"models": [{"modelName": n} for n in sorted(models)]}).encode(), "application/json")
        else:
            self.reply(404, b"")
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/models":
            request = json.loads(body)
            models[request["model_name"]] = open(os.path.join(request["url"], "answer")).read().strip()
            self.reply(200, b"{}", "application/json")
        elif self.path.startswith("/models/") and self.path.endswith("/invoke"):
            name = self.path[len("/models/"):-len("/invoke")]
            if name not in models:
                self.reply(404, b"not loaded\n")
            else:
                self.reply(200, "".join(models[name] + "\n" for _ in body.decode().strip().splitlines()).encode())
        else:
            self.reply(404, b"")
    def do_DELETE(self):
        models.pop(self.path[len("/models/"):], None)
        self.reply(200, b"{}", "application/json")
ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
"#;

#[test]
fn a_multi_model_container_loads_and_unloads_models_through_the_sagemaker_api() {
    let sandbox = Sandbox::new();
    let tag = format!("sagebrush-test/multi:{}", std::process::id());
    build_image(&sandbox, &tag, &[("serve", MULTI_MODEL_SERVE)]);
    let project = sandbox.dir.path().join("mme");
    let models = project.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let make = "import io, sys, tarfile\nfor i in range(30):\n    data = f'mm-{i}'.encode()\n    with tarfile.open(f'{sys.argv[1]}/m{i}.tar.gz', 'w:gz') as t:\n        info = tarfile.TarInfo('answer'); info.size = len(data); t.addfile(info, io.BytesIO(data))\n";
    let made = Command::new("python3").args(["-c", make]).arg(&models).output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let largest = std::fs::read_dir(&models).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).max().unwrap();
    let budget_mb = 10.5 * largest as f64 / (1024.0 * 1024.0);
    std::fs::write(
        project.join("sagebrush.toml"),
        format!("[pipeline]\nname = \"mme\"\n[algorithm]\nimage = \"{tag}\"\n[[stage]]\nkind = \"deploy\"\nendpoint = \"mme\"\nmulti_model = \"models\"\nmemory_budget_mb = {budget_mb}\n"),
    )
    .unwrap();
    let served = sandbox.serve(&["server", "--health-interval", "0.3"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());

    let client = reqwest::blocking::Client::new();
    let invoke = |name: &str| {
        let response = client
            .post(format!("{}/endpoints/mme/invocations", served.url))
            .header("content-type", "text/csv")
            .header("X-Amzn-SageMaker-Target-Model", name)
            .body("1\n2\n")
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    for round in 0..2 {
        for i in 0..30 {
            assert_eq!(invoke(&format!("m{i}.tar.gz")), (200, format!("mm-{i}\nmm-{i}\n")), "round {round}");
        }
    }
    assert_eq!(invoke("m99.tar.gz").0, 400, "SageMaker's ValidationError for a model it cannot load");
    // What the router counts as loaded is what the container holds: evictions were unloaded there.
    let view = endpoint(&sandbox, "mme")["variants"][0]["models"].clone();
    let loaded = view["loaded"].as_u64().unwrap();
    assert!((10..=11).contains(&loaded), "{view:#}");
    assert_eq!(view["loads"], 60, "every request past the budget loads again: {view:#}");
    let name = containers(&sandbox).into_iter().next().unwrap();
    let address = docker(&["inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", &name]);
    let held: serde_json::Value = wait_until(Duration::from_secs(10), "the container to unload evicted models", || {
        let held: serde_json::Value =
            reqwest::blocking::get(format!("http://{address}:8080/models")).ok()?.json().ok()?;
        (held["models"].as_array()?.len() as u64 == loaded).then_some(held)
    });
    assert!(held["models"].as_array().unwrap().iter().any(|m| m["modelName"] == "m29.tar.gz"), "{held:#}");

    // A dead model server is replaced, and the new one loads models again on demand.
    docker(&["kill", &name]);
    wait_until(Duration::from_secs(60), "a new multi-model container to answer", || {
        let now = containers(&sandbox);
        (now.len() == 1 && now[0] != name && invoke("m3.tar.gz") == (200, "mm-3\nmm-3\n".to_owned())).then_some(())
    });
    let _ = Command::new("docker").args(["rmi", "--force", &tag]).output();
}
