//! `[[notify]]`: a receiver started by the test gets a run's events in order, signed, after first
//! answering 500 twice; a target that never answers is given up on and listed by the API.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::harness::{Sandbox, client, text, wait_until};

const SECRET: &str = "notify-secret-of-the-test";

/// What the receiver was sent: (event kind header, signature header, body), each try.
type Received = Arc<Mutex<Vec<(String, String, String)>>>;

/// An HTTP receiver on loopback that answers 500 to its first `failures` requests, then 200.
fn receiver(failures: usize) -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/sagebrush", listener.local_addr().unwrap());
    let received: Received = Arc::default();
    let log = received.clone();
    std::thread::spawn(move || {
        for (count, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut kind, mut signature) = (0usize, String::new(), String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                let value = line.split_once(':').map(|(_, v)| v.trim().to_owned()).unwrap_or_default();
                if lower.starts_with("content-length:") {
                    length = value.parse().unwrap_or(0);
                } else if lower.starts_with("x-sagebrush-event:") {
                    kind = value;
                } else if lower.starts_with("x-sagebrush-signature-256:") {
                    signature = value;
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push((kind, signature, String::from_utf8_lossy(&body).into_owned()));
            let status = if count < failures { "500 Internal Server Error" } else { "200 OK" };
            let _ = stream
                .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes());
        }
    });
    (url, received)
}

/// Waits until the notifier has noted where the events are for `targets` targets: it tells each
/// of what comes after.
fn notifier_sees(sandbox: &Sandbox, targets: usize) {
    let query = "SELECT count(*) FROM trigger_state WHERE kind LIKE 'notify %'";
    let script = format!("import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute(\"{query}\").fetchone()[0])");
    wait_until(Duration::from_secs(30), "the notifier to see the project", || {
        let state = std::process::Command::new("python3")
            .args(["-c", &script])
            .arg(sandbox.home.join("state.db"))
            .output()
            .unwrap();
        (String::from_utf8_lossy(&state.stdout).trim() == targets.to_string()).then_some(())
    });
}

fn signed(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[test]
fn a_receiver_gets_the_events_in_order_after_failing_twice_and_a_dead_one_is_listed() {
    let sandbox = Sandbox::new();
    let (url, received) = receiver(2);
    // Nothing listens here: every try fails, and the failure is recorded.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/gone", listener.local_addr().unwrap())
    };
    let dir = sandbox.dir.path().join("told");
    std::fs::create_dir_all(&dir).unwrap();
    let pipeline = format!(
        "[pipeline]\nname = \"told\"\n\n\
         [[notify]]\nurl = \"{url}\"\nevents = [\"run_started\", \"stage_finished\", \"run_finished\"]\nsecret = \"env:SB_NOTIFY_SECRET\"\n\n\
         [[notify]]\nurl = \"{dead}\"\nevents = [\"run_finished\"]\nformat = \"slack\"\n\n\
         [[stage]]\nname = \"one\"\nkind = \"shell\"\ncommand = \"true\"\n\
         [[stage]]\nname = \"two\"\nkind = \"shell\"\ncommand = \"true\"\n"
    );
    std::fs::write(dir.join("sagebrush.toml"), pipeline).unwrap();
    let served = sandbox.serve_under(&["env", &format!("SB_NOTIFY_SECRET={SECRET}")], &["server"]);
    let added = sandbox.run(&["project", "add", dir.to_str().unwrap()]);
    assert!(added.status.success(), "{}", text(&added));
    // The notifier notes where the events are when it first sees the project; what comes after is sent.
    notifier_sees(&sandbox, 2);
    let output = sandbox.run(&["run", "told"]);
    assert!(output.status.success(), "{}", text(&output));

    let tries = wait_until(Duration::from_secs(30), "the run's events to arrive", || {
        let tries = received.lock().unwrap().clone();
        tries.iter().any(|(kind, _, _)| kind == "run_finished").then_some(tries)
    });
    let kinds: Vec<&str> = tries.iter().map(|(kind, _, _)| kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["run_started", "run_started", "run_started", "stage_finished", "stage_finished", "run_finished"],
        "{}",
        served.output()
    );
    let delivered: Vec<serde_json::Value> =
        tries[2..].iter().map(|(_, _, body)| serde_json::from_str(body).unwrap()).collect();
    let stages: Vec<&str> = delivered[1..3].iter().map(|e| e["data"]["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["one", "two"]);
    assert_eq!(delivered[3]["data"]["status"], "succeeded");
    for (_, signature, body) in &tries {
        assert_eq!(*signature, signed(body), "every try is signed over its body");
    }

    let failures = wait_until(Duration::from_secs(30), "the dead target to be given up on", || {
        let failures: serde_json::Value =
            client().get(format!("{}/api/v1/notifications/failures", served.url)).send().unwrap().json().unwrap();
        (!failures.as_array().unwrap().is_empty()).then_some(failures)
    });
    assert_eq!(failures[0]["url"], dead.as_str(), "{failures:#}");
    assert_eq!((failures[0]["kind"].as_str(), failures[0]["attempts"].as_i64()), (Some("run_finished"), Some(4)));
    let run = sandbox.json(&["show", "told", "1", "--json"]);
    assert_eq!(run["run"]["status"], "succeeded", "a failing notification blocks no run");
}

#[test]
fn a_receiver_is_told_of_the_endpoints_a_projects_runs_deploy_and_delete() {
    let sandbox = Sandbox::new();
    let (url, received) = receiver(0);
    let dir = sandbox.project("iris", "iris");
    let file = dir.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let told = format!("\n[[notify]]\nurl = \"{url}\"\nevents = [\"endpoint_updated\", \"endpoint_deleted\"]\n");
    std::fs::write(&file, pipeline.replacen("[algorithm]", &format!("{told}\n[algorithm]"), 1)).unwrap();
    let served = sandbox.serve(&["server"]);
    assert!(sandbox.run(&["project", "add", dir.to_str().unwrap()]).status.success());
    notifier_sees(&sandbox, 1);
    let output = sandbox.run(&["run", "iris"]);
    assert!(output.status.success(), "{}", text(&output));
    let told = wait_until(Duration::from_secs(30), "the endpoint events", || {
        let told = received.lock().unwrap().clone();
        (told.len() >= 3).then_some(told)
    });
    let events: Vec<(String, String)> = told
        .iter()
        .map(|(kind, _, body)| {
            let event: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(event["project"], "iris", "{event:#}");
            (kind.clone(), event["data"]["endpoint"].as_str().unwrap().to_owned())
        })
        .collect();
    // The run's test endpoint goes when the run ends, after prod was updated.
    let expected =
        [("endpoint_updated", "iris-test"), ("endpoint_updated", "iris-prod"), ("endpoint_deleted", "iris-test")];
    let expected: Vec<(String, String)> = expected.iter().map(|(k, e)| (k.to_string(), e.to_string())).collect();
    assert_eq!(events, expected, "{}", served.output());
}
