//! Serving: traffic shifting with deployment guardrails (canary, linear, rollback on an alarm) and production variants.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use crate::harness::{Sandbox, SteadyLoad, endpoint, text};

const TRAIN: &str = r#"#!/usr/bin/env python3
import json
hyperparameters = json.load(open("/opt/ml/input/config/hyperparameters.json"))
open("/opt/ml/model/answer", "w").write(hyperparameters.get("answer", "v1"))
print("train_accuracy=1.0")
"#;

/// Answers every row with the model's `answer`; `append-x` answers the row with `,x` added; `fail` answers 500.
const SERVE: &str = r#"#!/usr/bin/env python3
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
answer = open("/opt/ml/model/answer").read().strip()
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *args):
        pass
    def reply(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "text/csv")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.reply(200, b"ok\n")
    def do_POST(self):
        rows = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode().strip().splitlines()
        if answer == "fail":
            self.reply(500, b"this model is broken\n")
        elif answer.startswith("append-"):
            self.reply(200, "".join(row + "," + answer[7:] + "\n" for row in rows).encode())
        else:
            self.reply(200, "".join(answer + "\n" for _ in rows).encode())
ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("SAGEMAKER_BIND_TO_PORT", "8080"))), Handler).serve_forever()
"#;

const PIPELINE: &str = r#"[pipeline]
name = "shift"
[parameters]
answer = { type = "string", default = "v1" }
traffic = { type = "choice", choices = ["all-at-once", "canary", "linear"], default = "all-at-once" }
bake = { type = "string", default = "0s" }
[algorithm]
process = "algorithm"
[[stage]]
kind = "train"
channels = { training = "data/train.csv" }
hyperparameters = { answer = "${answer}" }
[[stage]]
kind = "deploy"
endpoint = "shift-prod"
traffic = "${traffic}"
traffic_percent = 30
bake = "${bake}"
max_error_rate = 0.05
"#;

/// A CSV request to an endpoint with extra headers.
fn post(
    served: &crate::harness::Served,
    endpoint: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> reqwest::blocking::Response {
    let mut request = reqwest::blocking::Client::new()
        .post(format!("{}/endpoints/{endpoint}/invocations", served.url))
        .header("content-type", "text/csv")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().unwrap()
}

/// A project whose model answers each row with a word chosen at training time.
pub(crate) fn answering_project(sandbox: &Sandbox) -> PathBuf {
    let project = sandbox.dir.path().join("shift");
    let algorithm = project.join("algorithm");
    std::fs::create_dir_all(&algorithm).unwrap();
    std::fs::create_dir_all(project.join("data")).unwrap();
    std::fs::write(project.join("data/train.csv"), "a,1\n").unwrap();
    std::fs::write(project.join("sagebrush.toml"), PIPELINE).unwrap();
    for (name, text) in [("train", TRAIN), ("serve", SERVE)] {
        std::fs::write(algorithm.join(name), text).unwrap();
        std::fs::set_permissions(algorithm.join(name), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    project
}

#[test]
fn a_canary_that_fails_its_alarm_rolls_back_and_a_linear_shift_completes_under_load() {
    let sandbox = Sandbox::new();
    let project = answering_project(&sandbox);
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["server"]);
    let first = sandbox.run(&["run", dir]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());
    assert_eq!(served.invoke("shift-prod", "text/csv", "1\n").text().unwrap(), "v1\n");

    // A broken model gets 30% of the traffic; its errors fire the alarm, and all traffic goes back to v1.
    let load = SteadyLoad::start(&served, "shift-prod");
    let broken = sandbox.run(&["run", dir, "-p", "answer=fail", "-p", "traffic=canary", "-p", "bake=20s"]);
    let (ok, failed) = load.finish();
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(failed > 0 && ok > failed, "the canary got some of the load: {ok} ok, {failed} failed");
    let shown = sandbox.json(&["show", "shift", "2", "--json"]);
    let reason = shown["run"]["reason"].as_str().unwrap();
    assert!(reason.contains("deploy to shift-prod rolled back: shift v2 answered"), "{reason}");
    assert!(reason.contains("above max_error_rate 0.05"), "{reason}");
    assert_eq!(endpoint(&sandbox, "shift-prod")["model_version"], 1);
    let audit = sandbox.json(&["audit", "--json"]);
    let rolled_back = audit.as_array().unwrap().iter().any(|e| {
        e["actor"] == "run shift #2" && e["action"].as_str().unwrap().starts_with("roll back shift-prod from shift v2")
    });
    assert!(rolled_back, "the rollback is in the audit: {audit:#}");
    for _ in 0..50 {
        assert_eq!(served.invoke("shift-prod", "text/csv", "1\n").text().unwrap(), "v1\n");
    }

    // A good model shifts over in steps of 30% with a load running: no request fails.
    let load = SteadyLoad::start(&served, "shift-prod");
    let good = sandbox.run(&["run", dir, "-p", "answer=v3", "-p", "traffic=linear", "-p", "bake=1s"]);
    let (ok, failed) = load.finish();
    assert!(good.status.success(), "{}", text(&good));
    assert_eq!(failed, 0, "requests failed during the linear shift ({ok} succeeded)");
    let log = sandbox.run(&["logs", "shift", "3", "--stage", "deploy"]);
    let log = String::from_utf8_lossy(&log.stdout).into_owned();
    for step in ["30% of traffic", "60% of traffic", "90% of traffic", "100% of traffic", "shift v3 serves all traffic"]
    {
        assert!(log.contains(step), "{step:?} not in the deploy log:\n{log}");
    }
    assert_eq!(endpoint(&sandbox, "shift-prod")["model_version"], 3);
    assert_eq!(served.invoke("shift-prod", "text/csv", "1\n2\n").text().unwrap(), "v3\nv3\n");
    let metrics = reqwest::blocking::get(format!("{}/metrics", served.url)).unwrap().text().unwrap();
    assert!(
        metrics.contains(r#"sagebrush_invocations_total{endpoint="shift-prod",variant="AllTraffic",model="shift v3"}"#),
        "{metrics}"
    );
}

#[test]
fn production_variants_split_traffic_by_weight_answer_their_target_take_new_weights_and_survive_a_restart() {
    let sandbox = Sandbox::new();
    let project = answering_project(&sandbox);
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["server"]);
    let first = sandbox.run(&["run", dir]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());
    // Variant B joins with weight 0.25 next to AllTraffic's 1.0: a fifth of the traffic.
    let ab = PIPELINE.replace("traffic = \"${traffic}\"\ntraffic_percent = 30\n", "variant = \"B\"\nweight = 0.25\n");
    std::fs::write(project.join("sagebrush.toml"), ab).unwrap();
    let second = sandbox.run(&["run", dir, "-p", "answer=v2"]);
    assert!(second.status.success(), "{}", text(&second));

    let client = reqwest::blocking::Client::new();
    let url = format!("{}/endpoints/shift-prod/invocations", served.url);
    let invoke = |target: Option<&str>| {
        let mut request = client.post(&url).header("content-type", "text/csv").body("1\n");
        if let Some(target) = target {
            request = request.header("X-Amzn-SageMaker-Target-Variant", target);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let variant = response.headers()["x-amzn-invoked-production-variant"].to_str().unwrap().to_owned();
        (status, variant, response.text().unwrap())
    };
    let total = 2000;
    let mut to_b = 0;
    for _ in 0..total {
        let (status, variant, body) = invoke(None);
        assert_eq!(status, 200);
        let expected = if variant == "B" { "v2\n" } else { "v1\n" };
        assert_eq!(body, expected, "variant {variant} answered with another model");
        to_b += usize::from(variant == "B");
    }
    // Binomial(2000, 0.2): the standard deviation of the share is 0.009; 0.04 is over four of them.
    let share = to_b as f64 / total as f64;
    assert!((share - 0.2).abs() < 0.04, "variant B got {share} of the traffic, expected 0.2");

    for _ in 0..50 {
        assert_eq!(invoke(Some("B")), (200, "B".to_owned(), "v2\n".to_owned()));
        assert_eq!(invoke(Some("AllTraffic")), (200, "AllTraffic".to_owned(), "v1\n".to_owned()));
    }
    let response = client.post(&url).header("X-Amzn-SageMaker-Target-Variant", "C").body("1\n").send().unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().unwrap().contains("has no variant \\\"C\\\""));

    let variants = endpoint(&sandbox, "shift-prod")["variants"].clone();
    let weights: Vec<(&str, f64, u64)> = variants
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["weight"].as_f64().unwrap(), v["invocations"].as_u64().unwrap()))
        .collect();
    assert_eq!(weights, [("AllTraffic", 1.0, (total - to_b + 50) as u64), ("B", 0.25, (to_b + 50) as u64)]);

    // New weights move the traffic with no restart; a wrong one changes nothing.
    for (args, why) in [
        (&["weights", "shift-prod", "C=1"][..], "has no variant C"),
        (&["weights", "shift-prod", "B=0", "AllTraffic=0"][..], "at least one variant"),
        (&["weights", "shift-prod", "B=-1"][..], "0 or more"),
    ] {
        let refused = sandbox.run(args);
        assert_eq!(refused.status.code(), Some(2), "{args:?}: {}", text(&refused));
        assert!(text(&refused).contains(why), "{args:?}: {}", text(&refused));
    }
    let refused = sandbox.run(&["weights", "no-such-endpoint", "B=1"]);
    assert!(text(&refused).contains("no endpoint no-such-endpoint"), "{}", text(&refused));
    assert_ne!(refused.status.code(), Some(0));
    assert_eq!(invoke(None).0, 200);
    let set = sandbox.json(&["weights", "shift-prod", "AllTraffic=0", "--json"]);
    let shown: Vec<(&str, f64)> = set["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["name"].as_str().unwrap(), v["weight"].as_f64().unwrap()))
        .collect();
    assert_eq!(shown, [("AllTraffic", 0.0), ("B", 0.25)], "{set:#}");
    for _ in 0..100 {
        assert_eq!(invoke(None), (200, "B".to_owned(), "v2\n".to_owned()), "all untargeted traffic goes to B");
    }
    assert_eq!(invoke(Some("AllTraffic")).2, "v1\n", "a variant at weight 0 still answers when targeted");

    // A restart brings back both variants with the weights last set.
    drop(served);
    let served = sandbox.serve(&["server"]);
    let response = post(&served, "shift-prod", &[("X-Amzn-SageMaker-Target-Variant", "AllTraffic")], "1\n");
    assert_eq!(response.text().unwrap(), "v1\n", "{}", served.output());
    for _ in 0..20 {
        assert_eq!(post(&served, "shift-prod", &[], "1\n").text().unwrap(), "v2\n");
    }
}

#[test]
fn test_endpoints_go_with_their_run_ttls_expire_and_idle_endpoints_are_listed() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "life");
    let file = project.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    assert!(pipeline.contains("endpoint = \"life-test\"\ndelete_after_run = true"), "{pipeline}");
    let served = sandbox.serve(&["server", "--health-interval", "0.2"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());
    // The smoke test used the test endpoint; the run's end deleted it.
    let shown = sandbox.json(&["show", "life", "1", "--json"]);
    assert_eq!(shown["run"]["status"], "succeeded");
    assert!(endpoint(&sandbox, "life-test").is_null(), "the test endpoint outlived its run");
    // SageMaker answers an unknown endpoint with a 400 ValidationError.
    assert_eq!(served.invoke("life-test", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 400);
    assert_eq!(served.invoke("life-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 200);

    // Idle listing: prod just answered, so it is not idle for a minute; it is idle for zero seconds.
    let idle = sandbox.json(&["endpoints", "--idle", "60", "--json"]);
    assert_eq!(idle.as_array().unwrap().len(), 0, "{idle:#}");
    let idle = sandbox.json(&["endpoints", "--idle", "0", "--json"]);
    assert_eq!(idle[0]["name"], "life-prod");

    // A TTL deletes the endpoint once it passes.
    std::fs::write(&file, pipeline.replace("endpoint = \"life-prod\"\n", "endpoint = \"life-prod\"\nttl = \"1s\"\n"))
        .unwrap();
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}", text(&run));
    crate::harness::wait_until(std::time::Duration::from_secs(30), "the TTL to delete life-prod", || {
        (served.invoke("life-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status() == 400).then_some(())
    });
    assert!(endpoint(&sandbox, "life-prod").is_null());

    // And by hand.
    std::fs::write(&file, pipeline).unwrap();
    assert!(sandbox.run(&["run", project.to_str().unwrap()]).status.success());
    let deleted = sandbox.run(&["delete-endpoint", "life-prod"]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    assert_eq!(served.invoke("life-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 400);
    assert_eq!(sandbox.run(&["delete-endpoint", "life-prod"]).status.code(), Some(1));
}

/// A model.json whose one leaf answers `label`, packed as SageMaker packs models.
const MAKE_MODELS: &str = r#"
import io, json, sys, tarfile
folder, count = sys.argv[1], int(sys.argv[2])
for i in range(count):
    label = f"model-{i:04}"
    model = {"format": 1, "algorithm": "decision-tree", "task": "classification", "n_features": 4,
             "classes": [label], "trees": [{"nodes": [{"f": -1, "t": 0.0, "l": 0, "r": 0, "v": 0.0}]}]}
    data = json.dumps(model).encode()
    with tarfile.open(f"{folder}/{label}.tar.gz", "w:gz") as archive:
        info = tarfile.TarInfo("model.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
print(len(data))
"#;

#[test]
fn a_thousand_models_share_one_endpoint_under_a_budget_that_fits_a_hundred() {
    let sandbox = Sandbox::new();
    let project = sandbox.dir.path().join("many");
    let models = project.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let made =
        std::process::Command::new("python3").args(["-c", MAKE_MODELS]).arg(&models).arg("1000").output().unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let model_bytes: f64 = String::from_utf8_lossy(&made.stdout).trim().parse().unwrap();
    let budget_mb = 100.5 * model_bytes / (1024.0 * 1024.0);
    let pipeline = format!(
        "[pipeline]\nname = \"many\"\n[algorithm]\nbuiltin = \"decision-tree\"\n[[stage]]\nkind = \"deploy\"\nendpoint = \"many-prod\"\nmulti_model = \"models\"\nmemory_budget_mb = {budget_mb}\n"
    );
    std::fs::write(project.join("sagebrush.toml"), pipeline).unwrap();
    let served = sandbox.serve(&["server"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());

    let client = reqwest::blocking::Client::new();
    let url = format!("{}/endpoints/many-prod/invocations", served.url);
    let invoke = |target: &str| {
        let response = client
            .post(&url)
            .header("content-type", "text/csv")
            .header("X-Amzn-SageMaker-Target-Model", target)
            .body("5.1,3.5,1.4,0.2\n")
            .send()
            .unwrap();
        (response.status().as_u16(), response.text().unwrap())
    };
    for i in 0..1000 {
        assert_eq!(invoke(&format!("model-{i:04}.tar.gz")), (200, format!("model-{i:04}\n")));
    }
    let cache = |sandbox: &Sandbox| endpoint(sandbox, "many-prod")["variants"][0]["models"].clone();
    let view = cache(&sandbox);
    assert_eq!(
        (view["loaded"].as_u64(), view["loads"].as_u64(), view["evictions"].as_u64()),
        (Some(100), Some(1000), Some(900)),
        "{view:#}"
    );
    assert!(view["loaded_bytes"].as_u64().unwrap() <= view["budget_bytes"].as_u64().unwrap());
    // Which models are loaded, most recently used first.
    let names: Vec<&str> = view["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 100, "{names:?}");
    assert!(names[0].contains("model-0999") && names[99].contains("model-0900"), "{names:?}");
    // The most recent stay loaded; the first were evicted and load again.
    assert_eq!(invoke("model-0999.tar.gz"), (200, "model-0999\n".to_owned()));
    assert_eq!(cache(&sandbox)["loads"], 1000);
    assert_eq!(invoke("model-0000.tar.gz"), (200, "model-0000\n".to_owned()));
    assert_eq!(cache(&sandbox)["loads"], 1001);

    assert_eq!(invoke("model-5000.tar.gz").0, 400, "SageMaker's ValidationError for a model it cannot load");
    assert_eq!(invoke("../many/models/model-0001.tar.gz").0, 400);
    let bare = client.post(&url).header("content-type", "text/csv").body("1,2,3,4\n").send().unwrap();
    assert_eq!(bare.status(), 400);
    assert!(bare.text().unwrap().contains("X-Amzn-SageMaker-Target-Model"));

    // A restart brings the endpoint back, with an empty cache.
    drop(served);
    let served = sandbox.serve(&["server"]);
    let response = post(&served, "many-prod", &[("X-Amzn-SageMaker-Target-Model", "model-0042.tar.gz")], "1,2,3,4\n");
    assert_eq!(response.text().unwrap(), "model-0042\n", "{}", served.output());
}

#[test]
fn a_three_step_inference_pipeline_feeds_each_answer_to_the_next_step() {
    let sandbox = Sandbox::new();
    let project = answering_project(&sandbox);
    let dir = project.to_str().unwrap();
    let steps = PIPELINE.replace("name = \"shift\"", "name = \"steps\"").replace(
        "endpoint = \"shift-prod\"\ntraffic = \"${traffic}\"\ntraffic_percent = 30\nbake = \"${bake}\"\nmax_error_rate = 0.05\n",
        "endpoint = \"${step}\"\n",
    ).replace("[parameters]\n", "[parameters]\nstep = { type = \"string\", default = \"pre\" }\n");
    std::fs::write(project.join("sagebrush.toml"), &steps).unwrap();
    let served = sandbox.serve(&["server"]);
    for (step, answer) in [("pre", "append-pre"), ("model", "append-model"), ("post", "append-post")] {
        let run = sandbox.run(&["run", dir, "-p", &format!("step={step}"), "-p", &format!("answer={answer}")]);
        assert!(run.status.success(), "{}\n{}", text(&run), served.output());
    }
    let chain = "[pipeline]\nname = \"steps\"\n[[stage]]\nkind = \"deploy\"\nendpoint = \"three-step\"\nchain = [\"pre\", \"model\", \"post\"]\n";
    std::fs::write(project.join("sagebrush.toml"), chain).unwrap();
    let run = sandbox.run(&["run", dir]);
    assert!(run.status.success(), "{}", text(&run));

    let response = served.invoke("three-step", "text/csv", "1\n2\n");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "1,pre,model,post\n2,pre,model,post\n");

    // A step that fails answers for the whole pipeline.
    std::fs::write(project.join("sagebrush.toml"), &steps).unwrap();
    assert!(sandbox.run(&["run", dir, "-p", "step=model", "-p", "answer=fail"]).status.success());
    let response = served.invoke("three-step", "text/csv", "1\n");
    assert_eq!(response.status(), 424);
    assert!(response.text().unwrap().contains("this model is broken"));

    // It is recorded, so a restart brings it back.
    assert!(sandbox.run(&["run", dir, "-p", "step=model", "-p", "answer=append-model"]).status.success());
    drop(served);
    let served = sandbox.serve(&["server"]);
    assert_eq!(
        served.invoke("three-step", "text/csv", "3\n").text().unwrap(),
        "3,pre,model,post\n",
        "{}",
        served.output()
    );
}

#[test]
fn captured_requests_are_written_with_their_answers_and_inference_ids() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "cap");
    let file = project.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        pipeline.replace("endpoint = \"cap-prod\"\n", "endpoint = \"cap-prod\"\ncapture_percent = 100\n"),
    )
    .unwrap();
    let served = sandbox.serve(&["server"]);
    let run = sandbox.run(&["run", project.to_str().unwrap()]);
    assert!(run.status.success(), "{}\n{}", text(&run), served.output());

    let client = reqwest::blocking::Client::new();
    let url = format!("{}/endpoints/cap-prod/invocations", served.url);
    let mut ids = Vec::new();
    for i in 0..20 {
        let mut request = client.post(&url).header("content-type", "text/csv").body(format!("5.{i},3.5,1.4,0.2\n"));
        if i == 0 {
            request = request.header("X-Amzn-SageMaker-Inference-Id", "mine-0");
        }
        let response = request.send().unwrap();
        assert_eq!(response.status(), 200);
        ids.push(response.headers()["x-amzn-sagemaker-inference-id"].to_str().unwrap().to_owned());
    }
    assert_eq!(ids[0], "mine-0", "the caller's inference id is kept");
    assert!(ids[1..].iter().all(|id| id.len() == 32), "{ids:?}");
    let dir = sandbox.home.join("capture/cap-prod");
    let lines = crate::harness::wait_until(std::time::Duration::from_secs(10), "20 captured lines", || {
        let text: String =
            std::fs::read_dir(&dir).ok()?.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        (lines.len() == 20).then_some(lines)
    });
    for (line, id) in lines.iter().zip(&ids) {
        assert_eq!(&line["inference_id"], id);
        assert_eq!(line["variant"], "AllTraffic");
        assert_eq!(line["response"]["status"], 200);
        assert!(
            ["setosa\n", "versicolor\n", "virginica\n"].contains(&line["response"]["body"].as_str().unwrap()),
            "{line}"
        );
        assert!(line["request"]["body"].as_str().unwrap().ends_with(",3.5,1.4,0.2\n"));
    }

    // Without capture_percent the next deploy stops capturing.
    std::fs::write(&file, pipeline).unwrap();
    assert!(sandbox.run(&["run", project.to_str().unwrap()]).status.success());
    for _ in 0..5 {
        assert_eq!(served.invoke("cap-prod", "text/csv", "5.1,3.5,1.4,0.2\n").status(), 200);
    }
    let count: usize = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap().lines().count())
        .sum();
    assert_eq!(count, 20);
}

/// Sends `count` requests, then ground truth `label` for each answer; returns how many each variant answered.
fn traffic_with_ground_truth(served: &crate::harness::Served, count: usize, label: &str) -> BTreeMap<String, usize> {
    let client = reqwest::blocking::Client::new();
    let url = format!("{}/endpoints/shift-prod/invocations", served.url);
    let mut labels = Vec::new();
    let mut answered = BTreeMap::new();
    for _ in 0..count {
        let response = client.post(&url).header("content-type", "text/csv").body("1\n").send().unwrap();
        assert_eq!(response.status(), 200);
        let id = response.headers()["x-amzn-sagemaker-inference-id"].to_str().unwrap().to_owned();
        *answered
            .entry(response.headers()["x-amzn-invoked-production-variant"].to_str().unwrap().to_owned())
            .or_default() += 1;
        labels.push(serde_json::json!({ "inference_id": id, "label": label }));
    }
    labels.push(serde_json::json!({ "inference_id": "never-seen", "label": label }));
    let feedback = client.post(format!("{}/endpoints/shift-prod/feedback", served.url)).json(&labels).send().unwrap();
    assert_eq!(feedback.status(), 200);
    let accepted: serde_json::Value = feedback.json().unwrap();
    assert_eq!(accepted["accepted"], count);
    assert_eq!(accepted["unknown"], serde_json::json!(["never-seen"]));
    answered
}

#[test]
fn an_ab_test_promotes_the_better_variant_on_ground_truth_and_rolls_back_the_worse() {
    let sandbox = Sandbox::new();
    let project = answering_project(&sandbox);
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["server"]);
    assert!(sandbox.run(&["run", dir]).status.success());
    let ab = PIPELINE
        .replace("traffic = \"${traffic}\"\ntraffic_percent = 30\n", "variant = \"${variant}\"\nweight = 1.0\n")
        .replace("[parameters]\n", "[parameters]\nvariant = { type = \"string\", default = \"B\" }\n");
    std::fs::write(project.join("sagebrush.toml"), &ab).unwrap();
    assert!(sandbox.run(&["run", dir, "-p", "answer=v2"]).status.success());

    // The test waits for 40 labelled answers per variant; the truth is always v2, which only B answers.
    let test = |challenger: &str, control: &str| {
        format!(
            "[pipeline]\nname = \"shift\"\n[[stage]]\nkind = \"ab-test\"\nendpoint = \"shift-prod\"\ncontrol = \"{control}\"\nchallenger = \"{challenger}\"\nmin_samples = 40\n"
        )
    };
    std::fs::write(project.join("sagebrush.toml"), test("B", "AllTraffic")).unwrap();
    let waiting = sandbox
        .command(&["run", dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let answered = traffic_with_ground_truth(&served, 200, "v2");
    assert!(answered.values().all(|n| *n >= 40), "{answered:?}");
    let output = waiting.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let shown = sandbox.json(&["show", "shift", "3", "--json"]);
    let stage = &shown["stages"][0]["outputs"];
    assert_eq!(stage["decision"], "promoted", "{stage:#}");
    assert_eq!(stage["B"]["accuracy"], 1.0);
    assert_eq!(stage["AllTraffic"]["accuracy"], 0.0);
    assert!(stage["p_value"].as_f64().unwrap() < 0.05);
    let record = endpoint(&sandbox, "shift-prod");
    assert_eq!(record["model_version"], 2);
    assert_eq!(record["variants"].as_array().unwrap().len(), 1, "{record:#}");
    assert_eq!(served.invoke("shift-prod", "text/csv", "1\n").headers()["x-amzn-invoked-production-variant"], "B");

    // A worse challenger C is rolled back, and the run says why.
    std::fs::write(project.join("sagebrush.toml"), &ab).unwrap();
    assert!(sandbox.run(&["run", dir, "-p", "answer=v3", "-p", "variant=C"]).status.success());
    std::fs::write(project.join("sagebrush.toml"), test("C", "B")).unwrap();
    let waiting = sandbox
        .command(&["run", dir])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    traffic_with_ground_truth(&served, 200, "v2");
    let output = waiting.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let shown = sandbox.json(&["show", "shift", "5", "--json"]);
    assert!(
        shown["run"]["reason"].as_str().unwrap().contains("ab-test rolled back: B is better at 0.95 confidence"),
        "{shown:#}"
    );
    assert_eq!(endpoint(&sandbox, "shift-prod")["variants"][0]["name"], "B");
    for _ in 0..20 {
        assert_eq!(served.invoke("shift-prod", "text/csv", "1\n").text().unwrap(), "v2\n");
    }
}

#[test]
fn the_deploy_command_rolls_a_version_out_with_a_canary_and_rolls_back_on_its_alarm() {
    let sandbox = Sandbox::new();
    let project = answering_project(&sandbox);
    let dir = project.to_str().unwrap();
    let refused = sandbox.run(&["deploy", "cli-prod", "shift"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    assert!(text(&refused).contains("sagebrush server"), "{}", text(&refused));

    let served = sandbox.serve(&["server"]);
    assert!(sandbox.run(&["run", dir]).status.success());
    assert!(sandbox.run(&["run", dir, "-p", "answer=fail"]).status.success());
    let first = sandbox.run(&["deploy", "cli-prod", "shift", "--model-version", "1"]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());
    assert_eq!(served.invoke("cli-prod", "text/csv", "1\n").text().unwrap(), "v1\n");

    let load = SteadyLoad::start(&served, "cli-prod");
    let broken = sandbox.run(&[
        "deploy",
        "cli-prod",
        "shift",
        "--model-version",
        "2",
        "--traffic",
        "canary",
        "--traffic-percent",
        "50",
        "--bake",
        "20",
        "--max-error-rate",
        "0.05",
    ]);
    let (ok, failed) = load.finish();
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken));
    assert!(text(&broken).contains("rolled back: shift v2 answered"), "{}", text(&broken));
    assert!(failed > 0 && ok > 0, "{ok} ok, {failed} failed");
    for _ in 0..20 {
        assert_eq!(served.invoke("cli-prod", "text/csv", "1\n").text().unwrap(), "v1\n");
    }
    assert_eq!(endpoint(&sandbox, "cli-prod")["model_version"], 1);
}
