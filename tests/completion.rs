//! `kubectl sts-safe <TAB>` through the real kubectl, every minor from 1.27 to 1.33 plus
//! the one on PATH: subcommands, flags and their values, and an unreachable cluster that
//! answers quickly with nothing. Live names are in tests/e2e/completion.rs.

#[path = "support/complete.rs"]
mod complete;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use complete::{complete, kubectls};

/// cobra's ShellCompDirectiveNoFileComp.
const NO_FILES: u32 = 4;

fn every_kubectl() -> Vec<(String, PathBuf)> {
    let mut all = kubectls();
    all.push(("PATH".into(), PathBuf::from("kubectl")));
    all
}

#[test]
fn every_kubectl_completes_subcommands_through_the_plugin() {
    for (version, kubectl) in every_kubectl() {
        let a = complete(&kubectl, &[("KUBECONFIG", "/nonexistent")], &[""]);
        assert_eq!(a.directive, Some(NO_FILES), "kubectl {version}: {a:?}");
        for sub in [
            "status",
            "doctor",
            "canary",
            "rollback",
            "scale",
            "prune-pvcs",
            "resize-pvcs",
            "recover",
            "completion",
        ] {
            assert!(
                a.values.iter().any(|v| v == sub),
                "kubectl {version} offers {sub}: {a:?}"
            );
        }
        assert!(
            a.lines.iter().any(|l| l.starts_with("canary\tRoll out")),
            "kubectl {version} passes the help through: {a:?}"
        );
        let a = complete(&kubectl, &[], &["pr"]);
        assert_eq!(a.values, ["prune-pvcs"], "kubectl {version}");
    }
}

#[test]
fn flags_and_their_values() {
    let kubectl = Path::new("kubectl");
    let a = complete(kubectl, &[], &["canary", "redis", "--on"]);
    assert_eq!(a.values, ["--on-failure"]);
    let a = complete(kubectl, &[], &["canary", "redis", "--on-failure", ""]);
    assert_eq!(a.values, ["pause", "rollback"]);
    assert_eq!(a.directive, Some(NO_FILES));
    let a = complete(kubectl, &[], &["status", "-o", ""]);
    assert_eq!(a.values, ["text", "json", "yaml"]);
    let a = complete(kubectl, &[], &["scale", "redis", "--dry-run="]);
    assert_eq!(
        a.values,
        ["--dry-run=none", "--dry-run=client", "--dry-run=server"]
    );
    // Flags already on the line are not offered again; short forms after a single dash.
    let a = complete(kubectl, &[], &["scale", "redis", "--replicas", "3", "-"]);
    assert!(!a.values.iter().any(|v| v == "--replicas"), "{a:?}");
    assert!(a.values.iter().any(|v| v == "-y"), "{a:?}");
    assert!(a.values.iter().any(|v| v == "--yes"), "{a:?}");
    // A file argument is left to the shell's file completion (directive 0).
    let a = complete(kubectl, &[], &["canary", "redis", "--patch", ""]);
    assert!(a.values.is_empty(), "{a:?}");
    assert_eq!(a.directive, Some(0));
    // The shells for the completion scripts.
    let a = complete(kubectl, &[], &["completion", ""]);
    assert!(a.values.iter().any(|v| v == "bash"), "{a:?}");
}

/// A server that accepts connections and never answers.
fn silent_server() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let held = l.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for c in held.incoming().flatten() {
            open.push(c);
        }
    });
    (l, port)
}

fn kubeconfig_for(server: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!(
        "sts-safe-complete-kc-{}-{}",
        std::process::id(),
        server.len()
    ));
    let mut f = std::fs::File::create(&p).unwrap();
    write!(
        f,
        "apiVersion: v1\nkind: Config\ncurrent-context: silent\nclusters:\n- name: silent\n  cluster:\n    server: {server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: silent\n  context:\n    cluster: silent\n    user: u\n    namespace: prod\nusers:\n- name: u\n  user:\n    token: t\n"
    )
    .unwrap();
    p
}

#[test]
fn an_unreachable_cluster_answers_quickly_with_nothing() {
    let (_keep, port) = silent_server();
    let kc = kubeconfig_for(&format!("https://127.0.0.1:{port}"));
    let refused = kubeconfig_for("https://127.0.0.1:1");
    // A versioned kubectl: the Cloud SDK's `kubectl` dispatcher asks the server for its
    // version before it runs anything (5 s against a silent server), not the plugin's doing.
    let versions = kubectls();
    let kubectl = &versions.last().unwrap().1;
    for (what, kc) in [("silent", &kc), ("refused", &refused)] {
        let kc = kc.to_str().unwrap();
        for words in [
            &["canary", ""][..],
            &["status", "-n", ""],
            &["canary", "redis", "--image", ""],
            &["recover", "redis", ""],
        ] {
            let a = complete(kubectl, &[("KUBECONFIG", kc)], words);
            assert!(a.values.is_empty(), "{what} {words:?}: {a:?}");
            assert!(
                a.elapsed < Duration::from_secs(4),
                "{what} {words:?} took {:?} (deadline 2s)",
                a.elapsed
            );
        }
    }
    // Contexts come from the kubeconfig alone.
    let a = complete(
        kubectl,
        &[("KUBECONFIG", kc.to_str().unwrap())],
        &["status", "--context", ""],
    );
    assert_eq!(a.values, ["silent"]);
}
