//! Git projects: added by URL and branch, each run building one commit whose pipeline file and
//! sources come from that commit, never from whatever a working folder holds.

use std::path::Path;

use crate::harness::{Sandbox, git, text};

fn set_leaves(repo: &Path, leaves: u32) {
    let file = repo.join("sagebrush.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    let start = text.find("max_leaf_nodes     = { type = \"int\", default = ").unwrap();
    let line_end = start + text[start..].find('\n').unwrap();
    let line = format!("max_leaf_nodes     = {{ type = \"int\", default = {leaves}, min = 2 }}");
    std::fs::write(&file, format!("{}{line}{}", &text[..start], &text[line_end..])).unwrap();
}

#[test]
fn a_git_project_builds_each_commit_of_its_branch_from_that_commit() {
    let sandbox = Sandbox::new();
    let repo = sandbox.project("iris", "iris");
    git(&repo, &["init", "--quiet", "--initial-branch", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "--quiet", "-m", "first"]);
    let first = git(&repo, &["rev-parse", "HEAD"]);
    let url = format!("file://{}", repo.display());
    let _served = sandbox.serve(&["server"]);

    // A branch it does not have is refused, and nothing is added.
    let output = sandbox.run(&["project", "add", &url, "--branch", "nope"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(text(&output).contains("has no branch nope"), "{}", text(&output));
    assert_eq!(sandbox.json(&["project", "list", "--json"]), serde_json::json!([]));

    let output = sandbox.run(&["project", "add", &url]);
    assert!(output.status.success(), "{}", text(&output));
    let projects = sandbox.json(&["project", "list", "--json"]);
    assert_eq!((projects[0]["name"].as_str(), projects[0]["branch"].as_str()), (Some("iris"), Some("main")));
    assert_eq!(projects[0]["repo"], url.as_str());

    let output = sandbox.run(&["run", "iris"]);
    assert!(output.status.success(), "{}", text(&output));
    let one = sandbox.json(&["show", "iris", "1", "--json"]);
    assert_eq!(one["run"]["commit_sha"], first.as_str());
    assert_eq!(one["run"]["parameters"]["max_leaf_nodes"], 5);

    // A new commit: the next run builds it, with its pipeline file.
    set_leaves(&repo, 3);
    git(&repo, &["commit", "--quiet", "-am", "fewer leaves"]);
    let second = git(&repo, &["rev-parse", "HEAD"]);
    // What the working folder holds and nobody committed is nothing a run sees.
    std::fs::write(repo.join("sagebrush.toml"), "this is not a pipeline [").unwrap();
    let output = sandbox.run(&["run", "iris"]);
    assert!(output.status.success(), "{}", text(&output));
    let two = sandbox.json(&["show", "iris", "2", "--json"]);
    assert_eq!(two["run"]["commit_sha"], second.as_str());
    assert_eq!(two["run"]["parameters"]["max_leaf_nodes"], 3);

    // A retry builds the commit its run built.
    let output = sandbox.run(&["retry", "iris", "1"]);
    assert!(output.status.success(), "{}", text(&output));
    let three = sandbox.json(&["show", "iris", "3", "--json"]);
    assert_eq!(three["run"]["commit_sha"], first.as_str());
    assert_eq!(three["run"]["parameters"]["max_leaf_nodes"], 5);

    // A commit whose pipeline file is broken is refused with the commit's file:line:column.
    git(&repo, &["commit", "--quiet", "-am", "broken"]);
    let output = sandbox.run(&["run", "iris"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let broken = git(&repo, &["rev-parse", "HEAD"]);
    assert!(text(&output).contains(&format!("{}:sagebrush.toml:1:", &broken[..12])), "{}", text(&output));
}
