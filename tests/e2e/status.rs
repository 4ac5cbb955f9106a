//! `status` against the real controllers, through the binary and through kubectl.

use std::time::Duration;

use crate::support::{json_documents, small_sts, TestNs, PLUGIN};

async fn scaled_down_redis(prefix: &str) -> TestNs {
    let ns = TestNs::new(prefix).await;
    ns.ready_redis(3).await;
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=2"])
        .expect_code(0);
    ns.eventually(Duration::from_secs(30), "redis-2 gone", || async {
        let pods = ns.pods().await;
        (pods.len() == 2).then_some(())
    })
    .await;
    ns.wait_ready("redis", Duration::from_secs(30)).await;
    ns
}

#[tokio::test]
async fn status_text_and_json_show_ordinals_and_the_orphan_pvc() {
    let ns = scaled_down_redis("status").await;
    let text = ns.plugin(&["status", "redis"]).await;
    text.expect_code(0);
    let out = &text.stdout;
    assert!(
        out.contains(&format!("StatefulSet {}/redis", ns.name)),
        "{out}"
    );
    assert!(
        out.contains("Replicas:   2 desired, 2 current, 2 ready, 2 updated"),
        "{out}"
    );
    // 1.24+ servers default maxUnavailable to 1 and status shows it.
    assert!(out.contains("RollingUpdate (partition 0"), "{out}");
    assert!(out.contains("redis-0") && out.contains("redis-1"), "{out}");
    assert!(out.contains("redis-data-redis-0 Bound 10Gi"), "{out}");
    assert!(
        out.contains("1 PVC(s) outside the live ordinal range (10Gi)"),
        "{out}"
    );
    assert!(
        out.contains("redis-data-redis-2  ordinal 2  Bound"),
        "{out}"
    );

    let json = ns.plugin(&["status", "redis", "-o", "json"]).await;
    json.expect_code(0);
    let v = json.json();
    assert_eq!(v["kind"], "StatusReport");
    assert_eq!(v["replicas"]["desired"], 2);
    assert_eq!(v["replicas"]["ready"], 2);
    let ords: Vec<_> = v["ordinals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["ordinal"].as_i64().unwrap())
        .collect();
    assert_eq!(ords, [0, 1]);
    for o in v["ordinals"].as_array().unwrap() {
        assert_eq!(o["phase"], "Running");
        assert_eq!(o["ready"], true);
        assert_eq!(o["revision"], "current");
        assert_eq!(o["images"][0], "redis:7.2-alpine");
        // sim-kubelet's nodes; the real scheduler (current server) spreads the pods.
        assert!(o["node"].as_str().unwrap().starts_with("sim-node-"), "{o}");
        assert_eq!(o["pvcs"][0]["phase"], "Bound");
    }
    assert_eq!(v["orphanPvcs"][0]["name"], "redis-data-redis-2");
    assert_eq!(v["orphanPvcs"][0]["ordinal"], 2);
    assert_eq!(v["orphanPvcs"].as_array().unwrap().len(), 1);

    let yaml = ns.plugin(&["status", "redis", "-o", "yaml"]).await;
    yaml.expect_code(0);
    let y: serde_json::Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    // Two runs a moment apart: ages may have moved on by a second.
    let without_ages = |mut doc: serde_json::Value| {
        for list in ["ordinals", "orphanPvcs"] {
            for item in doc[list].as_array_mut().into_iter().flatten() {
                item["ageSeconds"] = serde_json::Value::Null;
            }
        }
        doc
    };
    assert_eq!(
        without_ages(y),
        without_ages(v.clone()),
        "yaml and json carry the same structure"
    );
}

#[tokio::test]
async fn kubectl_discovers_the_plugin() {
    let ns = TestNs::new("discovery").await;
    ns.ready_redis(1).await;
    let dir = std::path::Path::new(PLUGIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .env("PATH", &path)
            .env("KUBECONFIG", crate::support::kubeconfig())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let help = run(&["sts-safe", "--help"]);
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    for cmd in [
        "status",
        "doctor",
        "canary",
        "rollback",
        "scale",
        "prune-pvcs",
        "completion",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from help:\n{help}");
    }
    let status = run(&["sts-safe", "status", "redis", "-n", &ns.name]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(String::from_utf8_lossy(&status.stdout).contains("1 desired, 1 current, 1 ready"));
    let list = run(&["plugin", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("kubectl-sts_safe"));
}

#[tokio::test]
async fn limited_context_gets_a_clear_403() {
    let ns = TestNs::new("forbidden").await;
    ns.ready_redis(1).await;
    let r = ns.plugin_as("sts-safe-limited", &["status", "redis"]).await;
    r.expect_code(1)
        .expect_one_error_line("forbidden: user \"sts-safe-limited\" cannot get statefulsets");
    assert!(r.stderr.contains(&format!("namespace \"{}\"", ns.name)));
    // With deploy/rbac.yaml bound, the same identity can read it.
    ns.grant_limited_user().await;
    let ok = ns
        .plugin_as("sts-safe-limited", &["status", "redis", "-o", "json"])
        .await;
    ok.expect_code(0);
    assert_eq!(ok.json()["replicas"]["ready"], 1);
}

#[tokio::test]
async fn watch_re_renders_on_change() {
    use tokio::io::AsyncReadExt;
    let ns = TestNs::new("status-watch").await;
    ns.ready_redis(1).await;
    let mut child = ns
        .plugin_command(&["status", "redis", "--watch", "-o", "json"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let mut scaled = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let n = tokio::time::timeout(Duration::from_secs(1), stdout.read(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        let seen = json_documents(&text);
        if !scaled && !seen.is_empty() {
            assert_eq!(seen[0]["replicas"]["ready"], 1);
            ns.kubectl(&["scale", "statefulset", "redis", "--replicas=2"])
                .expect_code(0);
            scaled = true;
        }
        if seen.iter().any(|r| r["replicas"]["ready"] == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no re-render with 2 ready replicas:\n{text}"
        );
    }
    child.kill().await.unwrap();
}

/// The cells of a table line (columns are two or more spaces apart).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// The table row whose first cells are `key`.
fn row(text: &str, key: &[&str]) -> Vec<String> {
    text.lines()
        .map(cells)
        .find(|c| c.len() >= key.len() && c.iter().zip(key).all(|(a, b)| a == b))
        .unwrap_or_else(|| panic!("no row {key:?} in:\n{text}"))
}

/// `doctor NAME -o json`'s findings, counted as the list counts them.
async fn doctor_counts(ns: &TestNs, name: &str) -> serde_json::Value {
    let r = ns.plugin(&["doctor", name, "-o", "json"]).await;
    let v = r.json();
    let n = |sev: &str| {
        v["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == sev)
            .count()
    };
    serde_json::json!({"errors": n("error"), "warnings": n("warn"), "info": n("info")})
}

#[tokio::test]
async fn status_without_a_name_lists_every_statefulset_one_line_each() {
    // redis: converged, scaled down 3 → 2 (one orphan PVC); web: a canary held at
    // partition 1; db: converged.
    let ns = scaled_down_redis("status-list").await;
    ns.apply(&(small_sts("web", 2) + "---\n" + &small_sts("db", 1)))
        .await;
    ns.wait_ready("web", Duration::from_secs(60)).await;
    ns.wait_ready("db", Duration::from_secs(60)).await;
    ns.patch_sts(
        "web",
        serde_json::json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}},
            "template": {"spec": {"containers": [{"name": "main", "image": "redis:7.4-alpine"}]}}
        }}),
    )
    .await;
    let v = ns
        .eventually(
            Duration::from_secs(60),
            "web-1 updated and Ready behind partition 1",
            || async {
                let r = ns.plugin(&["status", "-o", "json"]).await;
                let v = r.json();
                let web = &v["items"][2];
                let done = web["name"] == "web"
                    && web["revisionState"] == "partitioned"
                    && web["replicas"]["updated"] == 1
                    && web["replicas"]["ready"] == 2;
                done.then_some(v)
            },
        )
        .await;
    assert_eq!(v["kind"], "StatusList");
    assert_eq!(v["apiVersion"], "sts-safe/v1");
    assert_eq!(v["namespace"], ns.name.as_str());
    let items = v["items"].as_array().unwrap();
    let names: Vec<_> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["db", "redis", "web"]);
    let (db, redis, web) = (&items[0], &items[1], &items[2]);
    assert!(items.iter().all(|i| i["namespace"] == ns.name.as_str()));
    assert_eq!(db["revisionState"], "converged");
    assert_eq!(db["orphanPvcs"].as_array().unwrap().len(), 0);
    assert_eq!(redis["revisionState"], "converged");
    assert_eq!(redis["replicas"]["desired"], 2);
    assert_eq!(redis["replicas"]["ready"], 2);
    assert_eq!(redis["orphanPvcs"][0]["name"], "redis-data-redis-2");
    assert_eq!(redis["orphanPvcs"][0]["ordinal"], 2);
    assert_eq!(redis["orphanCapacity"], "10Gi");
    assert_eq!(web["updateStrategy"]["partition"], 1);
    assert_ne!(web["currentRevision"], web["updateRevision"]);
    assert!(redis["lock"].is_null());
    // The findings are doctor's, counted.
    for item in items {
        let name = item["name"].as_str().unwrap();
        let want = doctor_counts(&ns, name).await;
        for k in ["errors", "warnings", "info"] {
            assert_eq!(item["findings"][k], want[k], "{name} {k}: {item}");
        }
    }
    assert!(redis["findings"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "orphan-pvcs"));

    let text = ns.plugin(&["status"]).await;
    text.expect_code(0);
    let out = &text.stdout;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(
        cells(lines[0]),
        [
            "NAME",
            "READY",
            "REVISION",
            "ORPHAN PVCS",
            "FINDINGS",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(row(out, &["db"])[1..4], ["1/1", "converged", "0"], "{out}");
    assert_eq!(
        row(out, &["redis"])[1..4],
        ["2/2", "converged", "1 (10Gi)"],
        "{out}"
    );
    assert_eq!(
        row(out, &["web"])[1..4],
        ["2/2", "partition 1, 1/2 updated", "0"],
        "{out}"
    );
    let redis_findings = &row(out, &["redis"])[4];
    assert!(
        redis_findings.contains(&format!("{} warnings", redis["findings"]["warnings"])),
        "{out}"
    );
    assert!(text.stderr.is_empty(), "{}", text.stderr);

    let yaml = ns.plugin(&["status", "-o", "yaml"]).await;
    yaml.expect_code(0);
    let y: serde_json::Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    assert_eq!(y["kind"], "StatusList");
    assert_eq!(y["items"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn status_and_doctor_of_an_empty_namespace_say_no_resources_found() {
    let ns = TestNs::new("status-empty").await;
    for cmd in ["status", "doctor"] {
        let r = ns.plugin(&[cmd]).await;
        r.expect_code(0);
        assert!(r.stdout.is_empty(), "{cmd}: {}", r.stdout);
        assert_eq!(
            r.stderr.trim_end(),
            format!("No resources found in {} namespace.", ns.name),
            "{cmd}"
        );
    }
    let json = ns.plugin(&["status", "-o", "json"]).await;
    json.expect_code(0);
    assert_eq!(json.json()["items"], serde_json::json!([]));
    assert!(json.stderr.is_empty(), "{}", json.stderr);
    let json = ns.plugin(&["doctor", "-o", "json"]).await;
    json.expect_code(0);
    assert_eq!(json.json()["statefulsets"], serde_json::json!([]));
    // A namespace that does not exist is an error, as for `status NAME`.
    let out = tokio::process::Command::new(PLUGIN)
        .args(["status", "-n", "no-such-namespace-status-list"])
        .args(["--context", "sts-safe-admin"])
        .env("KUBECONFIG", crate::support::kubeconfig())
        .env("NO_COLOR", "1")
        .output()
        .await
        .unwrap();
    crate::support::Run::from(out)
        .expect_code(1)
        .expect_one_error_line("namespace \"no-such-namespace-status-list\" not found");
}

#[tokio::test]
async fn status_all_namespaces_shows_the_namespace_column() {
    let (a, b) = (
        TestNs::new("status-all-a").await,
        TestNs::new("status-all-b").await,
    );
    a.apply(&small_sts("alpha", 1)).await;
    b.apply(&small_sts("beta", 2)).await;
    a.wait_ready("alpha", Duration::from_secs(60)).await;
    b.wait_ready("beta", Duration::from_secs(60)).await;

    let text = a.plugin(&["status", "-A"]).await;
    text.expect_code(0);
    let out = &text.stdout;
    assert_eq!(
        cells(out.lines().next().unwrap()),
        [
            "NAMESPACE",
            "NAME",
            "READY",
            "REVISION",
            "ORPHAN PVCS",
            "FINDINGS",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(
        row(out, &[&a.name, "alpha"])[2..5],
        ["1/1", "converged", "0"],
        "{out}"
    );
    assert_eq!(
        row(out, &[&b.name, "beta"])[2..5],
        ["2/2", "converged", "0"],
        "{out}"
    );

    let json = b
        .plugin(&["status", "--all-namespaces", "-o", "json"])
        .await;
    json.expect_code(0);
    let v = json.json();
    assert!(v["namespace"].is_null(), "{v}");
    let ours: Vec<(String, String)> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["namespace"] == a.name.as_str() || i["namespace"] == b.name.as_str())
        .map(|i| {
            (
                i["namespace"].as_str().unwrap().to_string(),
                i["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        ours,
        [
            (a.name.clone(), "alpha".into()),
            (b.name.clone(), "beta".into())
        ]
    );

    // A name with -A is a usage error, before any request: the plugin asks nothing.
    let before = crate::support::plugin_audit_events(&a.name).len();
    let rv = a.sts("alpha").await.metadata.resource_version;
    for cmd in ["status", "doctor"] {
        let r = a.plugin(&[cmd, "alpha", "-A"]).await;
        r.expect_code(2)
            .expect_one_error_line("a resource cannot be retrieved by name across all namespaces");
        assert!(r.stdout.is_empty(), "{}", r.stdout);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(crate::support::plugin_audit_events(&a.name).len(), before);
    assert_eq!(a.sts("alpha").await.metadata.resource_version, rv);

    // Cluster-wide lists need cluster-wide rights: one line naming what is missing.
    for cmd in ["status", "doctor"] {
        let r = a.plugin_as("sts-safe-limited", &[cmd, "-A"]).await;
        r.expect_code(1).expect_one_error_line(
            "user \"sts-safe-limited\" cannot list statefulsets across all namespaces",
        );
    }
    // The namespace's Role (deploy/rbac.yaml) is enough for the list in the namespace.
    a.grant_limited_user().await;
    let limited = a
        .plugin_as("sts-safe-limited", &["status", "-o", "json"])
        .await;
    limited.expect_code(0);
    assert_eq!(limited.json()["items"][0]["name"], "alpha");
}

#[tokio::test]
async fn watch_without_a_name_redraws_the_list() {
    use tokio::io::AsyncReadExt;
    let ns = TestNs::new("status-list-watch").await;
    ns.apply(&small_sts("web", 1)).await;
    ns.wait_ready("web", Duration::from_secs(60)).await;
    let mut child = ns
        .plugin_command(&["status", "--watch", "-o", "json"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let mut added = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let n = tokio::time::timeout(Duration::from_secs(1), stdout.read(&mut buf))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(0);
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        let seen = json_documents(&text);
        if !added && !seen.is_empty() {
            assert_eq!(seen[0]["kind"], "StatusList");
            assert_eq!(seen[0]["items"].as_array().unwrap().len(), 1);
            ns.apply(&small_sts("db", 1)).await;
            added = true;
        }
        let both_ready = seen.iter().any(|l| {
            let items = l["items"].as_array().unwrap();
            items.len() == 2 && items.iter().all(|i| i["replicas"]["ready"] == 1)
        });
        if both_ready {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no redraw with db Ready:\n{text}"
        );
    }
    child.kill().await.unwrap();
}
