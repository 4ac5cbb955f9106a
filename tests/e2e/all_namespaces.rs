//! `-A` reads the cluster once per kind: `status -A` and `doctor -A` list each kind they
//! need across all namespaces in one request, never one request per namespace, however
//! many namespaces hold StatefulSets. Counted in the API server's audit log, for runs
//! made under an identity of their own (kubeconfig impersonation), so the requests of
//! the tests running beside this one are not counted.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::{
    audit_cluster_events, audit_events, kubeconfig, small_sts, Run, TestNs, PLUGIN,
};

/// A kubeconfig with one context more, `who`, that is the admin impersonating user `who`
/// in group system:masters: the audit log names `who` as the impersonated user.
fn impersonating_kubeconfig(who: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kubeconfig()).expect("readable kubeconfig");
    let mut kc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    let admin = kc["users"]
        .as_sequence()
        .and_then(|u| u.iter().find(|u| u["name"] == "sts-safe-admin"))
        .expect("user sts-safe-admin")["user"]
        .clone();
    let mut user = admin;
    user["as"] = who.into();
    user["as-groups"] = serde_yaml::Value::Sequence(vec!["system:masters".into()]);
    let entry = |kind: &str, body: serde_yaml::Value| {
        let mut m = serde_yaml::Mapping::new();
        m.insert("name".into(), who.into());
        m.insert(kind.into(), body);
        serde_yaml::Value::Mapping(m)
    };
    let context: serde_yaml::Value =
        serde_yaml::from_str(&format!("{{cluster: sts-safe-local, user: {who}}}")).unwrap();
    kc["users"]
        .as_sequence_mut()
        .unwrap()
        .push(entry("user", user));
    kc["contexts"]
        .as_sequence_mut()
        .unwrap()
        .push(entry("context", context));
    let path = std::env::temp_dir().join(format!("{who}.kubeconfig"));
    std::fs::write(&path, serde_yaml::to_string(&kc).unwrap()).unwrap();
    path
}

async fn plugin_with(config: &std::path::Path, who: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(PLUGIN)
        .args(args)
        .args(["--kubeconfig", config.to_str().unwrap(), "--context", who])
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run plugin");
    Run::from(out)
}

/// The reads `who` made, as "verb resource" with where they pointed (a namespace, or
/// "cluster-wide"), from every audited request in the given namespaces and cluster-wide.
/// A read the server refused is counted apart, with its code: on the 1.20 floor the
/// plugin asks policy/v1 for PodDisruptionBudgets, gets 404, and lists v1beta1.
fn reads_by(who: &str, namespaces: &[&str]) -> BTreeMap<String, usize> {
    let mut events = audit_cluster_events();
    for ns in namespaces {
        events.extend(audit_events(ns));
    }
    let mut reads = BTreeMap::new();
    for e in events {
        if e["impersonatedUser"]["username"] != who {
            continue;
        }
        let at = e["objectRef"]["namespace"]
            .as_str()
            .unwrap_or("cluster-wide")
            .to_string();
        let code = e["responseStatus"]["code"].as_i64().unwrap_or(0);
        let refused = if code >= 300 {
            format!(" -> {code}")
        } else {
            String::new()
        };
        let key = format!(
            "{} {} ({at}){refused}",
            e["verb"].as_str().unwrap_or_default(),
            e["objectRef"]["resource"].as_str().unwrap_or_default()
        );
        *reads.entry(key).or_default() += 1;
    }
    reads
}

#[tokio::test]
async fn all_namespaces_lists_each_kind_once_cluster_wide() {
    let spaces = [
        TestNs::new("all-once-a").await,
        TestNs::new("all-once-b").await,
        TestNs::new("all-once-c").await,
    ];
    for (i, ns) in spaces.iter().enumerate() {
        ns.apply(&small_sts(&format!("db{i}"), 1)).await;
    }
    for (i, ns) in spaces.iter().enumerate() {
        ns.wait_ready(&format!("db{i}"), Duration::from_secs(60))
            .await;
    }
    let names: Vec<&str> = spaces.iter().map(|n| n.name.as_str()).collect();

    for cmd in ["status", "doctor"] {
        let who = format!("sts-safe-audit-{}-{cmd}", spaces[0].name);
        let config = impersonating_kubeconfig(&who);
        let r = plugin_with(&config, &who, &[cmd, "-A", "-o", "json"]).await;
        // doctor exits 3 when any namespace of the cluster (the other tests' too) holds
        // an error finding.
        assert!(
            r.code == 0 || (cmd == "doctor" && r.code == 3),
            "{cmd} -A: exit {}: {}",
            r.code,
            r.stderr
        );
        // The run saw all three namespaces' StatefulSets.
        let text = r.stdout.clone();
        for ns in &names {
            assert!(text.contains(ns), "{cmd} -A names {ns}: {text}");
        }
        std::fs::remove_file(&config).ok();

        let reads = reads_by(&who, &names);
        eprintln!("{cmd} -A reads: {reads:?}");
        assert!(
            reads.contains_key("list statefulsets (cluster-wide)"),
            "{cmd} -A lists statefulsets cluster-wide: {reads:?}"
        );
        for (read, count) in &reads {
            let fallback = read == "list poddisruptionbudgets (cluster-wide) -> 404";
            assert!(
                read.starts_with("list ")
                    && (read.ends_with("(cluster-wide)") || fallback)
                    && *count == 1,
                "{cmd} -A: every read is one cluster-wide list per kind (and API version), \
                 got {read} x{count}: {reads:?}"
            );
        }
    }
}
