//! CLI behaviour that needs no cluster: help, version, completion, usage errors,
//! kubeconfig problems and an unreachable server.

use std::process::Command;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-sts_safe");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(PLUGIN);
    cmd.args(args).env("NO_COLOR", "1").env_remove("KUBECONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into(),
        stderr: String::from_utf8_lossy(&o.stderr).into(),
    }
}

fn run(args: &[&str]) -> Run {
    run_env(args, &[])
}

#[track_caller]
fn one_error_line(r: &Run, code: i32, needle: &str) {
    assert_eq!(r.code, code, "stderr: {}", r.stderr);
    let lines: Vec<_> = r.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got:\n{}", r.stderr);
    assert!(lines[0].starts_with("error: "), "{}", lines[0]);
    assert!(lines[0].contains(needle), "{:?} lacks {needle:?}", lines[0]);
    assert!(r.stdout.is_empty(), "nothing on stdout: {}", r.stdout);
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sts-safe-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn help_lists_every_subcommand_with_examples() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    for c in [
        "status",
        "doctor",
        "canary",
        "rollback",
        "scale",
        "prune-pvcs",
        "completion",
    ] {
        assert!(r.stdout.contains(c), "{c}");
    }
    assert!(r.stdout.contains("--kubeconfig") && r.stdout.contains("--namespace"));
    for sub in [
        "status",
        "doctor",
        "canary",
        "rollback",
        "scale",
        "prune-pvcs",
        "completion",
    ] {
        let h = run(&[sub, "--help"]);
        assert_eq!(h.code, 0, "{sub}");
        assert!(h.stdout.contains("Examples:"), "{sub} help has examples");
    }
}

#[test]
fn version_and_completion() {
    let v = run(&["--version"]);
    assert_eq!(v.code, 0);
    assert!(
        v.stdout.starts_with("kubectl-sts_safe ") || v.stdout.starts_with("kubectl sts-safe "),
        "{}",
        v.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = run(&["completion", shell]);
        assert_eq!(c.code, 0, "{shell}");
        assert!(
            c.stdout.contains("prune-pvcs"),
            "{shell} completion covers subcommands"
        );
    }
}

#[test]
fn usage_errors_are_one_line_with_exit_2() {
    one_error_line(
        &run(&["status", "redis", "-o", "xml"]),
        2,
        "possible values: text, json, yaml",
    );
    one_error_line(&run(&["scale", "redis", "--replicas", "-3"]), 2, "negative");
    one_error_line(
        &run(&["scale", "redis", "--replicas", "many"]),
        2,
        "not a whole number",
    );
    one_error_line(&run(&["frobnicate"]), 2, "unrecognized subcommand");
    one_error_line(&run(&["status", "redis", "--bogus"]), 2, "--bogus");
    one_error_line(&run(&["canary", "redis", "--soak", "soon"]), 2, "--soak");
}

/// A NAME with -A is refused before any request: against a server that cannot be
/// reached, the answer is still the usage error (exit 2), not "cannot reach".
#[test]
fn a_name_with_all_namespaces_is_a_usage_error_before_any_request() {
    let kc = temp_file(
        "closed-port-all",
        r#"apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: closed, context: {cluster: c, user: u, namespace: production}}]
current-context: closed
"#,
    );
    let kc = kc.to_str().unwrap();
    for args in [
        &["status", "redis", "-A"][..],
        &["status", "redis", "--all-namespaces", "--watch"],
        &["doctor", "redis", "-A"],
    ] {
        let mut a = args.to_vec();
        a.extend(["--kubeconfig", kc]);
        one_error_line(
            &run(&a),
            2,
            "a resource cannot be retrieved by name across all namespaces",
        );
    }
}

#[test]
fn kubeconfig_problems_name_the_file() {
    let missing = run(&["status", "redis", "--kubeconfig", "/nonexistent/kubeconfig"]);
    one_error_line(
        &missing,
        1,
        "kubeconfig: cannot load \"/nonexistent/kubeconfig\"",
    );
    let bad = temp_file(
        "malformed",
        "apiVersion: v1\nclusters: [this is: not valid\n",
    );
    let r = run(&["status", "redis", "--kubeconfig", bad.to_str().unwrap()]);
    one_error_line(
        &r,
        1,
        &format!("kubeconfig: cannot load \"{}\"", bad.display()),
    );
}

#[test]
fn unreachable_server_names_url_and_context() {
    let kc = temp_file(
        "closed-port",
        r#"apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: secret-token-value}}]
contexts: [{name: closed, context: {cluster: c, user: u, namespace: production}}]
current-context: closed
"#,
    );
    let r = run(&[
        "status",
        "redis",
        "--kubeconfig",
        kc.to_str().unwrap(),
        "-v",
        "-v",
        "-v",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let last = r.stderr.lines().last().unwrap();
    assert!(last.starts_with("error: cannot reach the Kubernetes API server at https://127.0.0.1:1 (context \"closed\")"), "{last}");
    assert!(
        !r.stderr.contains("secret-token-value"),
        "the token must never be logged:\n{}",
        r.stderr
    );
}
