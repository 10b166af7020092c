//! The dashboard in a real browser (headless Chromium) against a real server: a run started from
//! its form, approvals, canaries, and what a viewer may do. Every page is shot at a laptop's and
//! a phone's size into `target/dashboard-screenshots/`.

use std::time::Duration;

use crate::browser::Browser;
use crate::harness::{Sandbox, SteadyLoad, text};

const MINUTE: Duration = Duration::from_secs(60);

/// The iris example with a first stage that waits for the test's `go` file (to watch it run),
/// and a parameter of each kind a form has.
fn watched_project(sandbox: &Sandbox, go: &std::path::Path) -> std::path::PathBuf {
    let dir = sandbox.project("iris", "iris");
    let file = dir.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let pipeline = pipeline.replacen(
        "[algorithm]",
        "flavour = { type = \"choice\", choices = [\"plain\", \"fancy\"], default = \"plain\" }\n\
         verbose = { type = \"bool\", default = false }\n\
         api_key = { type = \"secret\", default = \"env:HOME\", help = \"a key the stages may use\" }\n\n[algorithm]",
        1,
    );
    let pipeline = pipeline.replacen(
        "[[stage]]\nkind = \"train\"",
        &format!(
            "[[stage]]\nname = \"prepare\"\nkind = \"shell\"\n\
             command = \"echo preparing; for i in $(seq 600); do [ -f {} ] && break; sleep 0.1; done; echo prepared\"\n\n\
             [[stage]]\nkind = \"train\"",
            go.display()
        ),
        1,
    );
    std::fs::write(&file, pipeline).unwrap();
    dir
}

#[test]
fn a_run_started_from_the_form_turns_green_without_a_reload_and_a_bad_value_shows_the_servers_message() {
    let sandbox = Sandbox::new();
    let go = sandbox.dir.path().join("go");
    let dir = watched_project(&sandbox, &go);
    let served = sandbox.serve(&["server", "--project", dir.to_str().unwrap()]);
    let browser = Browser::start();
    let base = served.url.clone();

    // The form comes from the typed parameters before any run: a select, a checkbox, a password.
    browser.goto(&format!("{base}/projects/iris"));
    assert_eq!(browser.count("select#p-flavour option"), 2);
    assert_eq!(browser.count("input#p-verbose[type=checkbox]"), 1);
    assert_eq!(browser.count("input#p-api_key[type=password]"), 1);
    assert_eq!(browser.count("input#p-max_leaf_nodes[type=number][min='2']"), 1);
    browser.shoot("project-empty");

    // A value out of range: the server's message, the CLI's own, next to the field; nothing runs.
    browser.fill("#p-max_leaf_nodes", "1");
    browser.fill("#p-api_key", "env:SOMETHING_PRIVATE");
    browser.click("#run-form button[type=submit]");
    let shown = browser.wait_for_text("#p-max_leaf_nodes-error", "the field's error", MINUTE, |t| !t.is_empty());
    let cli = sandbox.run(&["run", "iris", "-p", "max_leaf_nodes=1"]);
    assert_eq!(cli.status.code(), Some(2), "{}", text(&cli));
    let cli_message = text(&cli).lines().find(|l| l.contains("max_leaf_nodes=1")).unwrap_or_default().to_owned();
    assert!(shown.contains("1 is below the minimum 2"), "{shown}");
    assert_eq!(cli_message.strip_prefix("error: "), Some(shown.as_str()), "the form and the CLI say the same");
    let secret = browser.script("return document.querySelector('#p-api_key').value", false);
    assert_eq!(secret, "", "a secret is never echoed back");
    assert!(
        !browser.script("return document.documentElement.outerHTML", false).to_string().contains("SOMETHING_PRIVATE")
    );
    assert!(sandbox.json(&["runs", "--json"]).as_array().unwrap().is_empty(), "nothing ran");
    browser.shoot("project-form-error");

    // A good value: the run page, which follows the run to the end with no reload.
    browser.fill("#p-max_leaf_nodes", "3");
    browser.click("#p-verbose");
    browser.click("#run-form button[type=submit]");
    browser.wait_for("#run-status", "the run's page", MINUTE);
    assert!(browser.url().ends_with("/runs/iris/1"), "{}", browser.url());
    browser.script("window.sagebrushLoaded = 'first load'; return 0", false);
    browser.wait_for_text("#run-status", "the run running", MINUTE, |t| t.contains("running"));
    browser.wait_for_text("#log-prepare", "the shell stage's live log", MINUTE, |t| t.contains("preparing"));
    browser.shoot("run-running");
    std::fs::write(&go, "").unwrap();
    browser.wait_for_text("#run-status", "the run to succeed", Duration::from_secs(120), |t| t.contains("succeeded"));
    assert_eq!(browser.script("return window.sagebrushLoaded || 'reloaded'", false), "first load");
    assert!(browser.text("#log-train").unwrap_or_default().contains("accuracy"), "the train log is shown");
    assert!(
        browser.text(".job").unwrap_or_default().contains("Completed"),
        "the training job: {:?}",
        browser.text(".job")
    );
    browser.shoot("run-succeeded");
    let shown = sandbox.json(&["show", "iris", "1", "--json"]);
    assert_eq!(shown["run"]["parameters"]["max_leaf_nodes"], 3);
    assert_eq!(shown["run"]["parameters"]["verbose"], true);
    assert_eq!(shown["run"]["parameters"]["api_key"], "***");

    // The stage view: a second run seen turning green cell by cell on the project's page.
    browser.goto(&format!("{base}/projects/iris"));
    browser.script("window.sagebrushLoaded = 'first load'; return 0", false);
    std::fs::remove_file(&go).unwrap();
    let mut second = sandbox.command(&["run", "iris"]).stdout(std::process::Stdio::null()).spawn().unwrap();
    browser.wait_for("#run-2 td.cell.s-running", "run 2's running cell", MINUTE);
    browser.shoot("stage-view-running");
    std::fs::write(&go, "").unwrap();
    browser.wait_for_text("#run-2", "run 2 to succeed", Duration::from_secs(120), |t| {
        t.contains("succeeded") && !t.contains("running") && !t.contains("pending")
    });
    assert_eq!(browser.count("#run-2 td.cell.s-succeeded"), 8, "{:?}", browser.text("#run-2"));
    assert_eq!(browser.script("return window.sagebrushLoaded || 'reloaded'", false), "first load");
    assert!(second.wait().unwrap().success());
    browser.shoot("stage-view");
    browser.goto(&format!("{base}/"));
    browser.wait_for("#projects a[href='/projects/iris']", "the project's card", MINUTE);
    browser.shoot("projects");
    browser.goto(&format!("{base}/audit?actor=local"));
    assert!(
        browser.text("table").unwrap_or_default().contains("POST /projects/iris/runs"),
        "{:?}",
        browser.text("table")
    );
    browser.shoot("audit");
}

/// The iris example with an approval before prod.
fn approving_project(sandbox: &Sandbox) -> std::path::PathBuf {
    let dir = sandbox.project("iris", "iris");
    let file = dir.join("sagebrush.toml");
    let pipeline = std::fs::read_to_string(&file).unwrap();
    let prod = "[[stage]]\nname = \"deploy-prod\"";
    let approving =
        pipeline.replacen(prod, &format!("[[stage]]\nname = \"approve\"\nkind = \"approval\"\n\n{prod}"), 1);
    std::fs::write(&file, approving).unwrap();
    dir
}

#[test]
fn a_run_approved_from_the_models_page_changes_prod_on_the_endpoints_page() {
    let sandbox = Sandbox::new();
    let dir = approving_project(&sandbox);
    let served = sandbox.serve(&["server", "--project", dir.to_str().unwrap()]);
    let base = served.url.clone();
    let output = sandbox.run(&["run", "iris"]);
    assert_eq!(output.status.code(), Some(4), "the run waits: {}", text(&output));
    let browser = Browser::start();

    browser.goto(&format!("{base}/endpoints"));
    assert!(!browser.text("#endpoints").unwrap_or_default().contains("iris-prod"), "nothing in prod yet");
    browser.goto(&format!("{base}/models"));
    let version = browser.text("#iris-v1").unwrap_or_default();
    assert!(version.contains("PendingManualApproval"), "{version}");
    browser.shoot("models-pending");
    browser.goto(&format!("{base}/runs/iris/1"));
    assert!(
        browser.text("#run-summary").unwrap_or_default().contains("Approve"),
        "the run page offers the decision too"
    );
    browser.shoot("run-waiting");

    browser.goto(&format!("{base}/models"));
    browser.fill("#iris-v1 input[name=reason]", "smoke test 0.97; looked at the confusion matrix");
    browser.click("#iris-v1 button[type=submit]:not([formaction])");
    browser.wait_for_text("#iris-v1", "v1 approved", MINUTE, |t| t.contains("Approved"));
    let shown = sandbox.wait_for_run("iris", 1);
    assert_eq!(shown["run"]["status"], "succeeded", "{shown:#}\n{}", served.output());
    assert_eq!(shown["approvals"][0]["reason"], "smoke test 0.97; looked at the confusion matrix");

    browser.goto(&format!("{base}/endpoints"));
    let endpoints = browser.wait_for_text("#endpoints", "iris-prod in the list", MINUTE, |t| t.contains("iris-prod"));
    assert!(endpoints.contains("iris v1"), "{endpoints}");
    browser.shoot("endpoints");
    browser.goto(&format!("{base}/endpoints/iris-prod"));
    let history = browser.text("main").unwrap_or_default();
    assert!(history.contains("looked at the confusion matrix"), "who approved what serves: {history}");
    browser.shoot("endpoint");
    browser.goto(&format!("{base}/models"));
    browser.shoot("models");
}

#[test]
fn a_canary_is_seen_in_progress_then_complete_and_a_failing_one_rolled_back_with_its_reason() {
    let sandbox = Sandbox::new();
    let project = crate::serving::answering_project(&sandbox);
    let dir = project.to_str().unwrap();
    let served = sandbox.serve(&["server", "--project", dir]);
    let base = served.url.clone();
    let first = sandbox.run(&["run", "shift"]);
    assert!(first.status.success(), "{}\n{}", text(&first), served.output());
    let browser = Browser::start();
    browser.goto(&format!("{base}/endpoints/shift-prod"));
    // The health check's pings, every 5 s by default, show per instance without a reload.
    let instances = browser.wait_for_text("#instances", "a ping answered", MINUTE, |t| {
        t.contains("healthy") && !t.contains("unhealthy") && !t.contains("unchecked")
    });
    // A process-runtime instance listens on 8080 in a network namespace of its own.
    assert!(
        instances.contains("netns:") && instances.contains("/127.0.0.1:8080") && instances.contains("ago"),
        "{instances}"
    );

    // A good model, shifted as a canary that bakes for 8 seconds under load.
    let load = SteadyLoad::start(&served, "shift-prod");
    let mut good =
        sandbox.command(&["run", "shift", "-p", "answer=v2", "-p", "traffic=canary", "-p", "bake=8s"]).spawn().unwrap();
    let progress = browser.wait_for_text("#rollout", "the canary in progress", MINUTE, |t| t.contains("Step 1 of 2"));
    assert!(progress.contains("30%") && progress.contains("shift v2"), "{progress}");
    assert!(progress.contains("error rate above 0.05"), "the alarm thresholds: {progress}");
    browser.wait_for_text("#traffic", "traffic drawn", MINUTE, |t| {
        t.contains("requests/s") && !t.contains("requests/s: 0.00")
    });
    browser.shoot("endpoint-canary");
    let done = browser.wait_for_text("#rollout", "the canary complete", MINUTE, |t| t.contains("completed"));
    assert!(done.contains("canary to shift v2 completed"), "{done}");
    assert!(good.wait().unwrap().success());

    // A broken model: its errors fire the alarm, and the page says it rolled back, and why.
    let bad = sandbox.run(&["run", "shift", "-p", "answer=fail", "-p", "traffic=canary", "-p", "bake=20s"]);
    let (ok, failed) = load.finish();
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(failed > 0 && ok > failed, "{ok} ok, {failed} failed");
    let rolled = browser.wait_for_text("#rollout", "the rollback", MINUTE, |t| t.contains("rolled back"));
    assert!(rolled.contains("above max_error_rate 0.05"), "{rolled}");
    assert!(browser.text("#variants").unwrap_or_default().contains("shift v2"), "v2 still serves");
    assert_eq!(browser.text("#serves").as_deref(), Some("shift v2"), "the heading follows what serves");
    browser.shoot("endpoint-rolled-back");
    // Back to v1 by hand, with the endpoint page's button.
    browser.click("form[action='/endpoints/shift-prod/rollback'] button");
    browser
        .wait_for_text("#variants", "v1 serving again", MINUTE, |t| t.contains("shift v1") && !t.contains("shift v2"));
    assert_eq!(served.invoke("shift-prod", "text/csv", "1\n").text().unwrap(), "v1\n");
    browser.goto(&format!("{base}/projects/shift"));
    let view = browser.text("#run-3").unwrap_or_default();
    assert!(view.contains("rolled back"), "the failed run says why in the stage view: {view}");
    // A failed cell links to its stage's log.
    assert_eq!(browser.count("#run-3 td.cell.s-failed a[href='/runs/shift/3#log-deploy']"), 1);
    browser.click("#run-3 td.cell.s-failed a");
    browser.wait_for_text("#log-deploy", "the deploy log", MINUTE, |t| t.contains("alarm"));
    browser.shoot("run-failed");
    let drift = format!("{base}/endpoints/shift-prod/drift");
    browser.goto(&drift);
    browser.wait_for_text("main", "the drift page", MINUTE, |t| t.contains("No captured requests yet"));
    assert_eq!(browser.count("main table"), 0, "no PSI is shown for nothing captured");
    browser.shoot("drift-nothing-captured");
}

#[test]
fn a_viewer_sees_no_controls_and_is_refused_a_forged_post_and_no_form_posts_without_its_csrf_token() {
    let sandbox = Sandbox::new();
    let dir = approving_project(&sandbox);
    let viewer = sandbox.token("ana", "viewer");
    let operator = sandbox.token("ci", "operator");
    let admin = sandbox.token("root", "admin");
    let served = sandbox.serve(&[
        "server",
        "--listen",
        "0.0.0.0:0",
        "--public-endpoint",
        "iris-test",
        "--project",
        dir.to_str().unwrap(),
    ]);
    // The browser calls it by its loopback address; it listens on every interface.
    let base = served.url.replace("0.0.0.0", "127.0.0.1");
    let output = sandbox.command(&["run", "iris"]).env("SAGEBRUSH_TOKEN", &operator).output().unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    let browser = Browser::start();

    // No session: the login page, and a wrong token is refused there.
    browser.goto(&format!("{base}/runs/iris/1"));
    browser.wait_for("input#token[type=password]", "the login page", MINUTE);
    browser.shoot("login");
    browser.fill("#token", "sb_not-a-token");
    browser.click("form button[type=submit]");
    browser.wait_for_text("#token-error", "the refusal", MINUTE, |t| t.contains("not known"));

    // A viewer: every page, and no control to change anything on any of them.
    browser.fill("#token", &viewer);
    browser.click("form button[type=submit]");
    browser.wait_for("#run-status", "the run page after logging in", MINUTE);
    let cookie = browser.script("return document.cookie", false);
    assert_eq!(cookie, "", "the session cookie is HttpOnly");
    for page in ["/", "/projects/iris", "/runs/iris/1", "/models", "/endpoints", "/audit"] {
        browser.goto(&format!("{base}{page}"));
        browser.wait_for("main", page, MINUTE);
        let forms = browser.script(
            "return [...document.querySelectorAll('main form[method=post]')].map(f => f.action).join(' ')",
            false,
        );
        assert_eq!(forms, "", "a viewer sees no run, approve or deploy controls on {page}");
    }
    browser.goto(&format!("{base}/runs/iris/1"));
    browser.shoot("run-viewer");
    // A forged post with the session's own CSRF token (from its logout form): refused for the role.
    let csrf = browser.script("return document.querySelector('input[name=_csrf]').value", false);
    let csrf = csrf.as_str().unwrap().to_owned();
    assert_eq!(browser.post("/runs/iris/1/approve", &format!("_csrf={csrf}&reason=forged")), 403);
    assert_eq!(browser.post("/projects/iris/runs", &format!("_csrf={csrf}")), 403);
    let shown = sandbox.command(&["show", "iris", "1", "--json"]).env("SAGEBRUSH_TOKEN", &operator).output().unwrap();
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["run"]["status"], "waiting", "the forged approval changed nothing");

    // An operator's session: its forms work, and one without the CSRF token is refused.
    browser.goto(&format!("{base}/"));
    browser.click("header form button[type=submit]");
    browser.wait_for("input#token", "the login page after logging out", MINUTE);
    browser.fill("#token", &operator);
    browser.click("form button[type=submit]");
    browser.wait_for("#projects", "the projects page", MINUTE);
    assert_eq!(browser.post("/projects/iris/runs", "p.max_leaf_nodes=3"), 403);
    assert_eq!(browser.post("/runs/iris/1/approve", "reason=no+token"), 403);
    let runs = sandbox.command(&["runs", "--json"]).env("SAGEBRUSH_TOKEN", &operator).output().unwrap();
    let runs: serde_json::Value = serde_json::from_slice(&runs.stdout).unwrap();
    assert_eq!(runs.as_array().map(Vec::len), Some(1), "no run was started: {runs}");
    browser.goto(&format!("{base}/runs/iris/1"));
    assert!(browser.count("#run-summary form[action='/runs/iris/1/approve']") == 1, "an operator may decide");
    // The refusals are in the audit, with who tried.
    let audit = sandbox.command(&["audit", "--json"]).env("SAGEBRUSH_TOKEN", &admin).output();
    let audit: serde_json::Value = serde_json::from_slice(&audit.unwrap().stdout).unwrap_or_default();
    let refused = audit.as_array().into_iter().flatten().any(|e| e["actor"] == "ana" && e["status"] == 403);
    assert!(refused, "{audit:#}");
}
