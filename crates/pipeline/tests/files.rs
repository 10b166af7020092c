//! Pipeline files as users write them: the examples load, and mistakes point at their line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline::{Algorithm, BuiltinAlgorithm, Channel, StageKind, Value};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples").join(name).join("sagebrush.toml")
}

fn error_of(text: &str) -> String {
    pipeline::parse(Path::new("sagebrush.toml"), text.to_owned()).unwrap_err().to_string()
}

/// Each `(file, location, message)`: the file's error starts with the location and says the message.
fn expect_errors(cases: &[(String, &str, &str)]) {
    for (text, location, message) in cases {
        let error = error_of(text);
        assert!(
            error.starts_with(location) && error.contains(message),
            "expected {location} … {message}, got:\n{error}"
        );
    }
}

const MINIMAL: &str = r#"[pipeline]
name = "m"
[parameters]
leaves = { type = "int", default = 5, min = 2 }
cutoff = { type = "float", default = 0.5 }
split = { type = "choice", choices = ["a", "b"], default = "a" }
[algorithm]
builtin = "random-forest"
[[stage]]
kind = "train"
channels = { training = "data/${split}.csv" }
hyperparameters = { max_leaf_nodes = "${leaves}", n_trees = 10 }
max_runtime = "90s"
[[stage]]
kind = "gate"
require = [{ metric = "train:accuracy", min = "${cutoff}" }]
[[stage]]
kind = "shell"
command = "echo ${HOME} ${leaves}"
retries = 2
timeout = "1m"
[[stage]]
kind = "shell"
command = "true"
"#;

#[test]
fn the_examples_load() {
    let iris = pipeline::load(&example("iris")).unwrap();
    assert_eq!(iris.name, "iris");
    assert_eq!(iris.algorithm, Some(Algorithm::Builtin(BuiltinAlgorithm::DecisionTree)));
    let resolved = iris.resolve(&[]).unwrap();
    let names: Vec<&str> = resolved.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["checkout", "train", "gate", "register", "deploy-test", "smoke-test", "deploy-prod"]);
    let python = pipeline::load(&example("iris-python")).unwrap();
    assert_eq!(python.algorithm, Some(Algorithm::Process { dir: "algorithm".into(), workdir: "/opt/program".into() }));
}

#[test]
fn parameters_are_substituted_into_stages() {
    let pipeline = pipeline::parse(Path::new("sagebrush.toml"), MINIMAL.to_owned()).unwrap();
    let resolved = pipeline.resolve(&[("leaves".into(), "7".into()), ("split".into(), "b".into())]).unwrap();
    assert_eq!(resolved.parameters["leaves"], Value::Int(7));
    let StageKind::Train { channels, hyperparameters, max_runtime, .. } = &resolved.stages[0].kind else { panic!() };
    assert_eq!(channels["training"], Channel::Path("data/b.csv".into()));
    assert_eq!(hyperparameters["max_leaf_nodes"], "7");
    assert_eq!(hyperparameters["n_trees"], "10");
    assert_eq!(*max_runtime, Duration::from_secs(90));
    let StageKind::Gate { require, .. } = &resolved.stages[1].kind else { panic!() };
    assert_eq!(require[0].min, Some(0.5));
    // Shell variables that are not parameters are left to the shell.
    assert_eq!(resolved.stages[2].kind, StageKind::Shell { command: "echo ${HOME} 7".into() });
    assert_eq!((resolved.stages[2].retries, resolved.stages[2].timeout), (2, Some(Duration::from_secs(60))));
    assert_eq!(resolved.stages[3].name, "shell-2");
    assert!(pipeline.resolve(&[("split".into(), "c".into())]).unwrap_err().to_string().contains("not one of a, b"));
}

#[test]
fn an_unknown_kind_points_at_its_value_with_a_suggestion() {
    let text = MINIMAL.replace("kind = \"gate\"", "kind = \"gaet\"");
    let error = error_of(&text);
    assert!(error.starts_with("sagebrush.toml:15:8: unknown stage kind \"gaet\""), "{error}");
    assert!(error.contains("did you mean \"gate\"?"), "{error}");
}

#[test]
fn mistakes_name_line_and_column() {
    let cases = [
        (MINIMAL.replace("max_runtime = \"90s\"", "max_runtime = \"soon\""), "sagebrush.toml:13:15:", "not a duration"),
        (MINIMAL.replace("channels = {", "chanels = {"), "sagebrush.toml:11:1:", "did you mean `channels`?"),
        (MINIMAL.replace("${split}", "${splt}"), "sagebrush.toml:11:25:", "did you mean `${split}`?"),
        (MINIMAL.replace("default = 5", "default = 1"), "sagebrush.toml:4:36:", "below the minimum 2"),
        (
            MINIMAL.replace("\"random-forest\"", "\"random-forrest\""),
            "sagebrush.toml:8:11:",
            "did you mean \"random-forest\"?",
        ),
        (MINIMAL.replace("min = \"${cutoff}\"", "min = \"${split}\""), "sagebrush.toml:16:47:", "must be a number"),
        (MINIMAL.replace("[pipeline]", "[pipeline"), "sagebrush.toml:1:", "not valid TOML"),
        (
            MINIMAL.replace("[algorithm]\nbuiltin = \"random-forest\"\n", ""),
            "sagebrush.toml:8:8:",
            "needs an [algorithm]",
        ),
        (MINIMAL.replace("retries = 2", "retries = -1"), "sagebrush.toml:20:11:", "between 0 and 100"),
    ];
    expect_errors(&cases);
}

#[test]
fn a_file_without_stages_says_how_to_add_one() {
    let error = error_of("[pipeline]\nname = \"x\"\n");
    assert!(error.contains("no stages") && error.contains("[[stage]]"), "{error}");
}

#[test]
fn a_secret_is_never_written_into_the_pipeline() {
    let head = "[pipeline]\nname = \"s\"\n[parameters]\n";
    let in_command = format!(
        "{head}token = {{ type = \"secret\", default = \"env:HF_TOKEN\" }}\n[[stage]]\nkind = \"shell\"\ncommand = \"echo ${{token}}\"\n"
    );
    let error = error_of(&in_command);
    assert!(error.starts_with("sagebrush.toml:7:11"), "{error}");
    assert!(error.contains("`${token}` is a secret") && error.contains("TOKEN"), "{error}");
    let literal = format!("{head}token = {{ type = \"secret\", default = \"hunter2\" }}\n");
    let error = error_of(&literal);
    assert!(error.contains("env:NAME or file:PATH") && !error.contains("hunter2"), "{error}");
    let referenced = format!(
        "{head}token = {{ type = \"secret\", default = \"env:HF_TOKEN\" }}\n[[stage]]\nkind = \"shell\"\ncommand = \"true\"\n"
    );
    let pipeline = pipeline::parse(Path::new("sagebrush.toml"), referenced).unwrap();
    let resolved = pipeline.resolve(&[("token".into(), "file:/run/secrets/token".into())]).unwrap();
    assert_eq!(resolved.parameters["token"], Value::Secret(pipeline::SecretSource::File("/run/secrets/token".into())));
}

#[test]
fn triggers_are_read_and_their_mistakes_point_at_their_value() {
    let with = |triggers: &str| MINIMAL.replacen("[algorithm]", &format!("{triggers}\n[algorithm]"), 1);
    let full = with(
        "[triggers.push]\nsecret = \"env:HOOK\"\nbranches = [\"main\", \"release/*\"]\npaths = [\"data/**\"]\n\
         [triggers.poll]\ninterval = \"2m\"\n\
         [triggers.cron]\nschedule = \"0 3 * * 1-5\"\ntimezone = \"America/New_York\"\n\
         [triggers.data]\npath = \"data\"\ndebounce = \"10s\"\n\
         [triggers.drift]\nendpoint = \"iris-prod\"\nwindow = 500\n",
    );
    let triggers = pipeline::parse(Path::new("sagebrush.toml"), full).unwrap().triggers;
    let push = triggers.push.unwrap();
    assert_eq!((push.secret.to_string(), push.branches.len()), ("env:HOOK".to_owned(), 2));
    assert_eq!(triggers.poll.unwrap().interval, Duration::from_secs(120));
    assert_eq!(triggers.cron.unwrap().timezone, chrono_tz::America::New_York);
    assert_eq!(triggers.data.unwrap().debounce, Duration::from_secs(10));
    let on_s3 = with("[triggers.data]\npath = \"s3://data/incoming/\"\n");
    let watched = pipeline::parse(Path::new("sagebrush.toml"), on_s3).unwrap().triggers.data.unwrap();
    assert_eq!(watched.path, "s3://data/incoming/", "an s3:// prefix is never a path outside the project");
    let drift = triggers.drift.unwrap();
    assert_eq!((drift.endpoint.as_str(), drift.window, drift.threshold), ("iris-prod", 500, 0.2));
    assert_eq!(drift.every, Duration::from_secs(60));

    let cases = [
        (with("[triggers.push]\nbranches = [\"main\"]\n"), "sagebrush.toml:7:1:", "needs the `secret`"),
        (with("[triggers.push]\nsecret = \"hunter2\"\n"), "sagebrush.toml:8:10:", "never as its value"),
        (with("[triggers.push]\nsecret = \"env:H\"\npaths = [\"a[\"]\n"), "sagebrush.toml:9:10:", "is not a glob"),
        (with("[triggers.cron]\nschedule = \"0 3 * *\"\n"), "sagebrush.toml:8:12:", "is not 5 fields"),
        (
            with("[triggers.cron]\nschedule = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\n"),
            "sagebrush.toml:9:12:",
            "no time zone",
        ),
        (with("[triggers.poll]\ninterval = \"fast\"\n"), "sagebrush.toml:8:12:", "not a duration"),
        (with("[triggers.data]\npath = \"../elsewhere\"\n"), "sagebrush.toml:8:8:", "outside the project"),
        (with("[triggers.data]\npath = \"s3:///incoming\"\n"), "sagebrush.toml:8:8:", "names no bucket"),
        (with("[triggers.nightly]\n"), "sagebrush.toml:7:", "unknown key `nightly`"),
        (with("[triggers.drift]\nwindow = 100\n"), "sagebrush.toml:7:1:", "needs the `endpoint`"),
        (with("[triggers.drift]\nendpoint = \"a b\"\n"), "sagebrush.toml:8:12:", "`endpoint`"),
        (with("[triggers.drift]\nendpoint = \"e\"\nthreshold = -1\n"), "sagebrush.toml:9:13:", "positive"),
        (with("[triggers.drift]\nendpoint = \"e\"\nwindow = 3\n"), "sagebrush.toml:9:10:", "at least 10 rows"),
        (with("[[notify]]\nurl = \"ftp://x\"\n"), "sagebrush.toml:8:7:", "is not an http(s) URL"),
        (
            with("[[notify]]\nurl = \"https://x\"\nevents = [\"run_done\"]\n"),
            "sagebrush.toml:9:11:",
            "no event \"run_done\"",
        ),
        (with("[[notify]]\nurl = \"https://x\"\nformat = \"xml\"\n"), "sagebrush.toml:9:10:", "no format \"xml\""),
    ];
    expect_errors(&cases);
}

#[test]
fn a_champion_gate_names_both_endpoints_and_a_known_metric() {
    let gate = |extra: &str| {
        format!(
            "{MINIMAL}[[stage]]\nkind = \"champion\"\nendpoint = \"m-prod\"\ncandidate = \"m-test\"\ndata = \"d.csv\"\n{extra}"
        )
    };
    let pipeline = pipeline::parse(Path::new("sagebrush.toml"), gate("metric = \"rmse\"\nmargin = 0.5\n")).unwrap();
    let resolved = pipeline.resolve(&[]).unwrap();
    let last = resolved.stages.last().unwrap();
    assert!(
        matches!(&last.kind, StageKind::Champion { metric: pipeline::ChampionMetric::Rmse, margin, .. } if *margin == 0.5),
        "{:?}",
        last.kind
    );
    let error = error_of(&gate("metric = \"f1\"\n"));
    assert!(error.contains("no metric \"f1\"") && error.contains("rmse for a regressor"), "{error}");
    assert!(error_of(&gate("margin = -1\n")).contains("must be 0 or more"));
    let missing = format!("{MINIMAL}[[stage]]\nkind = \"champion\"\nendpoint = \"m-prod\"\ndata = \"d.csv\"\n");
    assert!(error_of(&missing).contains("needs `candidate`"), "{}", error_of(&missing));
}

#[test]
fn a_channel_is_a_path_in_the_project_or_an_s3_uri_with_a_bucket() {
    let file = |channel: &str| {
        format!(
            "[pipeline]\nname = \"m\"\n[algorithm]\nbuiltin = \"random-forest\"\n[[stage]]\nkind = \"train\"\nchannels = {{ training = \"{channel}\" }}\n"
        )
    };
    let pipeline = pipeline::parse(Path::new("sagebrush.toml"), file("s3://data/iris/train.csv")).unwrap();
    let StageKind::Train { channels, .. } = &pipeline.resolve(&[]).unwrap().stages[0].kind else { panic!() };
    assert_eq!(channels["training"], Channel::S3("s3://data/iris/train.csv".into()));
    expect_errors(&[
        (file("s3:///iris/train.csv"), "sagebrush.toml:7:25:", "names no bucket"),
        (file("../train.csv"), "sagebrush.toml:7:25:", "outside the project"),
    ]);
}

#[test]
fn a_train_stage_chooses_sagemaker_and_what_sagemaker_would_refuse_points_at_its_value() {
    let file = |algorithm: &str, extra: &str| {
        format!(
            "[pipeline]\nname = \"m\"\n[algorithm]\n{algorithm}\n[[stage]]\nkind = \"train\"\nchannels = {{ training = \"s3://d/train.csv\" }}\n{extra}"
        )
    };
    let image = "image = \"iris-byo\"";
    let role = "role = \"arn:aws:iam::123456789012:role/SageMakerRole\"\n";
    let text =
        file(image, &format!("backend = \"sagemaker\"\n{role}instance_type = \"ml.m5.xlarge\"\ninstance_count = 2\n"));
    let pipeline = pipeline::parse(Path::new("sagebrush.toml"), text).unwrap();
    let StageKind::Train { backend, instance_type, .. } = &pipeline.resolve(&[]).unwrap().stages[0].kind else {
        panic!()
    };
    let pipeline::TrainingBackend::SageMaker(settings) = backend else { panic!("{backend:?}") };
    assert_eq!(settings.role, "arn:aws:iam::123456789012:role/SageMakerRole");
    assert_eq!((settings.instance_count, settings.volume_size_gb, settings.region.as_deref()), (2, 30, None));
    assert_eq!(instance_type.as_deref(), Some("ml.m5.xlarge"));

    let local = pipeline::parse(Path::new("sagebrush.toml"), file(image, "")).unwrap();
    let StageKind::Train { backend, .. } = &local.resolve(&[]).unwrap().stages[0].kind else { panic!() };
    assert_eq!(*backend, pipeline::TrainingBackend::Local, "local unless the file says otherwise");

    let sagemaker = |extra: &str| file(image, &format!("backend = \"sagemaker\"\n{extra}"));
    expect_errors(&[
        (file(image, "backend = \"lambda\"\n"), "sagebrush.toml:8:11:", "unknown backend \"lambda\""),
        (file(image, role), "sagebrush.toml:8:8:", "`role` is a setting of SageMaker training jobs"),
        (
            file("builtin = \"random-forest\"", &format!("backend = \"sagemaker\"\n{role}")),
            "sagebrush.toml:8:11:",
            "SageMaker runs container images",
        ),
        (sagemaker(""), "sagebrush.toml:5:1:", "needs `role`"),
        (sagemaker("role = \"SageMakerRole\"\n"), "sagebrush.toml:9:8:", "is not an IAM role ARN"),
        (
            sagemaker(&format!("{role}instance_type = \"m5.large\"\n")),
            "sagebrush.toml:10:17:",
            "is not a SageMaker instance type",
        ),
        (sagemaker(&format!("{role}instance_count = 0\n")), "sagebrush.toml:10:18:", "out of range"),
        (sagemaker(&format!("{role}max_runtime = \"29d\"\n")), "sagebrush.toml:10:15:", "at most 28 days"),
    ]);
}

#[test]
fn a_deploy_stage_chooses_sagemaker_and_what_its_endpoints_do_not_take_points_at_its_value() {
    let file = |algorithm: &str, extra: &str| {
        format!(
            "[pipeline]\nname = \"m\"\n[algorithm]\n{algorithm}\n[[stage]]\nkind = \"deploy\"\nendpoint = \"m-test\"\n{extra}"
        )
    };
    let image = "image = \"iris-byo\"";
    let role = "role = \"arn:aws:iam::123456789012:role/SageMakerRole\"\n";
    let sagemaker = |extra: &str| file(image, &format!("backend = \"sagemaker\"\n{role}{extra}"));
    let text = sagemaker("region = \"eu-west-1\"\nalarms = [\"m-5xx\"]\ninstances = 20\ntraffic = \"canary\"\n");
    let pipeline = pipeline::parse(Path::new("sagebrush.toml"), text).unwrap();
    let StageKind::Deploy { backend, instances, .. } = &pipeline.resolve(&[]).unwrap().stages[0].kind else { panic!() };
    let pipeline::HostingBackend::SageMaker(settings) = backend else { panic!("{backend:?}") };
    assert_eq!(settings.role, "arn:aws:iam::123456789012:role/SageMakerRole");
    assert_eq!(
        (settings.region.as_deref(), settings.alarms.as_slice()),
        (Some("eu-west-1"), &["m-5xx".to_owned()][..])
    );
    assert_eq!(*instances, 20, "SageMaker is not held to one machine's 16 instances");

    let local = pipeline::parse(Path::new("sagebrush.toml"), file(image, "")).unwrap();
    let StageKind::Deploy { backend, .. } = &local.resolve(&[]).unwrap().stages[0].kind else { panic!() };
    assert_eq!(*backend, pipeline::HostingBackend::Local, "local unless the file says otherwise");

    expect_errors(&[
        (file(image, "backend = \"ecs\"\n"), "sagebrush.toml:8:11:", "unknown backend \"ecs\""),
        (file(image, "alarms = []\n"), "sagebrush.toml:8:10:", "`alarms` is a setting of SageMaker endpoints"),
        (
            file("builtin = \"random-forest\"", &format!("backend = \"sagemaker\"\n{role}")),
            "sagebrush.toml:8:11:",
            "SageMaker runs container images",
        ),
        (file(image, "backend = \"sagemaker\"\n"), "sagebrush.toml:5:1:", "needs `role`"),
        (sagemaker("instance_type = \"large\"\n"), "sagebrush.toml:10:17:", "is not a SageMaker instance type"),
        (sagemaker("capture_percent = 5\n"), "sagebrush.toml:10:19:", "served by this machine's router"),
        (sagemaker("ttl = \"1h\"\n"), "sagebrush.toml:10:7:", "served by this machine's router"),
        (
            sagemaker("traffic = \"linear\"\nweight = 0.5\n"),
            "sagebrush.toml:11:10:",
            "only on an endpoint with one variant",
        ),
        (file(image, "instances = 20\n"), "sagebrush.toml:8:13:", "out of range"),
    ]);
}

#[test]
fn a_build_stage_pushes_to_ecr_by_name_or_host_and_a_malformed_registry_points_at_its_value() {
    let file = |registry: &str| {
        format!(
            "[pipeline]\nname = \"m\"\n[algorithm]\nimage = \"iris-byo\"\n[[stage]]\nkind = \"build\"\nregistry = \"{registry}\"\n"
        )
    };
    let registry = |text: String| {
        let pipeline = pipeline::parse(Path::new("sagebrush.toml"), text).unwrap();
        let StageKind::Build { registry, .. } = &pipeline.resolve(&[]).unwrap().stages[0].kind else { panic!() };
        registry.clone()
    };
    use pipeline::{Ecr, Registry};
    assert_eq!(registry(file("ecr")), Registry::Ecr(Ecr { account: None, region: None }));
    assert_eq!(
        registry(file("123456789012.dkr.ecr.eu-west-1.amazonaws.com")),
        Registry::Ecr(Ecr { account: Some("123456789012".to_owned()), region: Some("eu-west-1".to_owned()) })
    );
    assert_eq!(registry(file("registry.example.com:5000")), Registry::Host("registry.example.com:5000".to_owned()));
    let local = "[pipeline]\nname = \"m\"\n[algorithm]\nimage = \"i\"\n[[stage]]\nkind = \"build\"\n";
    assert_eq!(registry(local.to_owned()), Registry::Local, "sagebrush's own registry unless the file says otherwise");

    expect_errors(&[
        (file("12345.dkr.ecr.eu-west-1.amazonaws.com"), "sagebrush.toml:7:12:", "is not an ECR registry"),
        (file("registry.example.com/team/iris"), "sagebrush.toml:7:12:", "is not a registry host"),
        (file(""), "sagebrush.toml:7:12:", "is not a registry host"),
    ]);
}

#[test]
fn a_process_algorithm_is_a_folder_of_the_project_put_where_its_image_would_have_it() {
    let file = |algorithm: &str| {
        format!(
            "[pipeline]\nname = \"m\"\n[algorithm]\n{algorithm}\n[[stage]]\nkind = \"train\"\nchannels = {{ training = \"d.csv\" }}\n"
        )
    };
    let pipeline =
        pipeline::parse(Path::new("sagebrush.toml"), file("process = \"alg\"\nworkdir = \"/opt/ml/code\"")).unwrap();
    assert_eq!(pipeline.algorithm, Some(Algorithm::Process { dir: "alg".into(), workdir: "/opt/ml/code".into() }));
    let anywhere =
        file("process = \"../shared/alg\"").replace("name = \"m\"\n", "name = \"m\"\nallow_absolute_paths = true\n");
    assert!(pipeline::parse(Path::new("sagebrush.toml"), anywhere).is_ok());
    expect_errors(&[
        (file("process = \"../../root/.sagebrush\""), "sagebrush.toml:4:11:", "outside the project"),
        (
            file("process = \"alg\"\nworkdir = \"/opt\""),
            "sagebrush.toml:5:11:",
            "would cover the sandbox's own /opt/ml",
        ),
        (file("process = \"alg\"\nworkdir = \"/opt/ml/model\""), "sagebrush.toml:5:11:", "would cover"),
        (file("image = \"x\"\nworkdir = \"/opt/program\""), "sagebrush.toml:5:11:", "`workdir` goes with `process`"),
    ]);
}
