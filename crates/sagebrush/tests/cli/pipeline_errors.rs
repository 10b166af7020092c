//! A bad pipeline file or parameter is reported with file, line and column before anything runs, and records nothing.

use crate::harness::{Sandbox, text};

fn assert_nothing_recorded(sandbox: &Sandbox) {
    let runs = sandbox.json(&["runs", "--json"]);
    assert_eq!(runs.as_array().unwrap().len(), 0, "{runs:#}");
}

#[test]
fn a_typo_in_the_file_names_file_line_and_column() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let file = project.join("sagebrush.toml");
    let text_before = std::fs::read_to_string(&file).unwrap();
    let broken = text_before.replacen(r#"kind = "register""#, r#"kind = "regster""#, 1);
    std::fs::write(&file, &broken).unwrap();
    let offset = broken.find(r#""regster""#).unwrap();
    let line = broken[..offset].lines().count();
    let column = offset - broken[..offset].rfind('\n').unwrap();

    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("sagebrush.toml:{line}:{column}")), "expected {line}:{column} in:\n{stderr}");
    assert!(stderr.contains("register"), "a did-you-mean hint: {stderr}");
    assert_nothing_recorded(&sandbox);
}

#[test]
fn a_toml_syntax_error_names_its_position() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let file = project.join("sagebrush.toml");
    let text_before = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text_before.replacen("[algorithm]", "[algorithm", 1)).unwrap();
    let output = sandbox.run(&["run", project.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let line = text_before[..text_before.find("[algorithm]").unwrap()].lines().count() + 1;
    assert!(String::from_utf8_lossy(&output.stderr).contains(&format!("sagebrush.toml:{line}:")), "{}", text(&output));
    assert_nothing_recorded(&sandbox);
}

#[test]
fn parameters_are_checked_before_anything_runs() {
    let sandbox = Sandbox::new();
    let project = sandbox.project("iris", "iris");
    let dir = project.to_str().unwrap();

    let output = sandbox.run(&["run", dir, "-p", "max_leaf_nodes=abc"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("max_leaf_nodes") && stderr.contains("int"), "{stderr}");

    let output = sandbox.run(&["run", dir, "-p", "max_leaf_nodes=1"]);
    assert_eq!(output.status.code(), Some(2), "out of range: {}", text(&output));

    let output = sandbox.run(&["run", dir, "-p", "no_such=1"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no_such"));

    // A parameter with no default must be given.
    let file = project.join("sagebrush.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, original.replacen("[parameters]\n", "[parameters]\nnote = { type = \"string\" }\n", 1))
        .unwrap();
    let output = sandbox.run(&["run", dir]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("note") && stderr.contains("-p note="), "{stderr}");

    assert_nothing_recorded(&sandbox);
}
