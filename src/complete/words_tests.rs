use clap::CommandFactory;

use super::*;
use crate::cli::Cli;

fn root() -> Command {
    let mut c = Cli::command();
    c.build();
    c
}

fn line(words: &[&str]) -> Line {
    let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    parse(&root(), &words)
}

fn values(c: &[Candidate]) -> Vec<&str> {
    c.iter().map(|c| c.value.as_str()).collect()
}

#[test]
fn an_empty_line_completes_subcommands_with_their_summaries() {
    let l = line(&[""]);
    assert_eq!(l.want, Want::Subcommands);
    let subs = subcommands(&root());
    for name in [
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
        let c = subs.iter().find(|c| c.value == name).expect(name);
        assert!(c.help.as_ref().is_some_and(|h| !h.is_empty()), "{name}");
    }
    assert_eq!(line(&["ca"]).prefix, "ca");
    assert_eq!(line(&[]).want, Want::Subcommands);
}

#[test]
fn names_after_every_statefulset_command() {
    for cmd in [
        "status",
        "doctor",
        "canary",
        "rollback",
        "scale",
        "prune-pvcs",
        "resize-pvcs",
        "recover",
    ] {
        assert_eq!(line(&[cmd, ""]).want, Want::StatefulSets, "{cmd}");
    }
    // Only one name: after it, nothing (no file names either).
    assert_eq!(line(&["scale", "redis", ""]).want, Want::Nothing);
    // recover's further arguments are the StatefulSet's pods.
    assert_eq!(
        line(&["recover", "redis", ""]).want,
        Want::Pods("redis".into())
    );
    assert_eq!(
        line(&["recover", "redis", "redis-0", "re"]).want,
        Want::Pods("redis".into())
    );
}

#[test]
fn the_scope_comes_from_flags_earlier_on_the_line_in_every_spelling() {
    let l = line(&[
        "--kubeconfig",
        "/tmp/kc",
        "canary",
        "--context=dev",
        "-nprod",
        "",
    ]);
    assert_eq!(l.want, Want::StatefulSets);
    assert_eq!(l.scope.kubeconfig.as_deref(), Some(Path::new("/tmp/kc")));
    assert_eq!(l.scope.context.as_deref(), Some("dev"));
    assert_eq!(l.scope.namespace.as_deref(), Some("prod"));
    assert_eq!(
        line(&["status", "-n", "a", "--namespace", "b", ""])
            .scope
            .namespace
            .as_deref(),
        Some("b")
    );
    assert_eq!(
        line(&["doctor", "-n=x", ""]).scope.namespace.as_deref(),
        Some("x")
    );
}

use std::path::Path;

#[test]
fn all_namespaces_takes_no_name() {
    assert_eq!(line(&["status", "-A", ""]).want, Want::Nothing);
    assert_eq!(line(&["prune-pvcs", "-yA", ""]).want, Want::Nothing);
}

#[test]
fn flag_values() {
    assert_eq!(line(&["status", "-n", ""]).want, Want::Namespaces);
    assert_eq!(line(&["status", "--context", "d"]).want, Want::Contexts);
    assert_eq!(line(&["status", "--kubeconfig", ""]).want, Want::Files);
    assert_eq!(line(&["canary", "r", "--patch", ""]).want, Want::Files);
    assert_eq!(line(&["recover", "--untaint", ""]).want, Want::Nodes);
    let Want::Choices(c) = line(&["status", "-o", ""]).want else {
        panic!("-o has choices")
    };
    assert_eq!(values(&c), ["text", "json", "yaml"]);
    let Want::Choices(c) = line(&["canary", "redis", "--on-failure", ""]).want else {
        panic!("--on-failure has choices")
    };
    assert!(values(&c).contains(&"rollback"), "{c:?}");
    let Want::Choices(c) = line(&["canary", "redis", "--order", "p"]).want else {
        panic!("--order has choices")
    };
    assert!(values(&c).contains(&"primary-last"), "{c:?}");
    let Want::Choices(c) = line(&["completion", ""]).want else {
        panic!("completion has shells")
    };
    assert!(values(&c).contains(&"bash"), "{c:?}");
    // A duration or a number: nothing to offer, and no file names.
    assert_eq!(line(&["canary", "redis", "--soak", ""]).want, Want::Nothing);
}

#[test]
fn dry_run_takes_its_value_only_after_equals() {
    let l = line(&["scale", "redis", "--dry-run=s"]);
    assert_eq!(l.lead, "--dry-run=");
    assert_eq!(l.prefix, "s");
    let Want::Choices(c) = l.want else {
        panic!("--dry-run= has choices")
    };
    assert_eq!(values(&c), ["none", "client", "server"]);
    // `--dry-run redis`: the next word is not its value.
    assert_eq!(line(&["scale", "--dry-run", ""]).want, Want::StatefulSets);
}

#[test]
fn image_completes_the_container_part_only() {
    assert_eq!(
        line(&["canary", "redis", "--image", ""]).want,
        Want::Containers("redis".into())
    );
    assert_eq!(
        line(&["canary", "redis", "--image", "redis=re"]).want,
        Want::Nothing
    );
    // The StatefulSet is not known yet: nothing.
    assert_eq!(line(&["canary", "--image", ""]).want, Want::Nothing);
}

#[test]
fn flags_of_the_subcommand_without_the_ones_already_given() {
    let r = root();
    let l = line(&["scale", "redis", "--replicas", "3", "--"]);
    assert_eq!(l.want, Want::Flags);
    let f = flags(&r, &l);
    let v = values(&f);
    assert!(!v.contains(&"--replicas"), "{v:?}");
    for want in ["--step", "--dry-run", "--yes", "--namespace", "--context"] {
        assert!(v.contains(&want), "{want} in {v:?}");
    }
    assert!(!v.contains(&"-y"), "short forms only after a single dash");
    let f = flags(&r, &line(&["canary", "redis", "--image", "a", "-"]));
    let v = values(&f);
    assert!(v.contains(&"--image"), "--image is repeatable: {v:?}");
    assert!(v.contains(&"-y") && v.contains(&"-n"), "{v:?}");
    assert!(f.iter().any(|c| c.value == "--soak" && c.help.is_some()));
}

#[test]
fn after_double_dash_only_positionals() {
    assert_eq!(line(&["status", "--", "-"]).want, Want::StatefulSets);
}
