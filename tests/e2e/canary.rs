//! `canary` and `rollback` against the real StatefulSet controller.

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use sts_safe::model;

use crate::support::{pod_names, Check, Recorder, TestNs};

async fn revisions(ns: &TestNs) -> Vec<(String, Option<String>, bool)> {
    ns.pods()
        .await
        .iter()
        .map(|p| {
            (
                p.name_any(),
                model::revision(p).map(str::to_string),
                model::is_available(p),
            )
        })
        .collect()
}

#[tokio::test]
async fn healthy_canary_updates_top_down_one_pod_at_a_time() {
    let ns = TestNs::new("canary-ok").await;
    ns.ready_redis(4).await;
    let rec = Recorder::start(&ns).await;
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis=redis:7.4-alpine",
            "--yes",
        ])
        .await;
    r.expect_code(0);
    assert!(
        r.stdout
            .contains("container redis: image redis:7.2-alpine → redis:7.4-alpine"),
        "{}",
        r.stdout
    );
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    let update = model::update_revision(&sts).unwrap().to_string();
    assert_eq!(
        model::current_revision(&sts),
        Some(update.as_str()),
        "the controller promoted the revision"
    );
    assert_eq!(model::partition(&sts), 0);
    rec.caught_up().await;
    assert_eq!(
        rec.ready_order(&update),
        ["redis-3", "redis-2", "redis-1", "redis-0"]
    );
    assert_eq!(
        rec.partitions("redis"),
        [0, 4, 3, 2, 1, 0],
        "froze at replicas, then stepped down one by one"
    );
    assert_eq!(
        rec.max_unavailable(&pod_names("redis", 4)),
        1,
        "never more than one pod unavailable"
    );
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "healthy canary");
    for (name, rev, ok) in revisions(&ns).await {
        assert!(ok, "{name} available");
        assert_eq!(rev.as_deref(), Some(update.as_str()), "{name}");
    }
    for p in ns.pods().await {
        assert_eq!(model::images(&p), ["redis:7.4-alpine"]);
    }
}

#[tokio::test]
async fn crashloop_stops_after_the_first_pod_then_rollback_restores_everything() {
    let ns = TestNs::new("canary-crash").await;
    ns.ready_redis(3).await;
    let before = ns.sts("redis").await;
    let old = model::current_revision(&before).unwrap().to_string();
    let r = ns
        .plugin(&["canary", "redis", "--image", "redis:7.4-crashloop", "--yes"])
        .await;
    r.expect_code(3);
    assert!(r.stderr.contains("CrashLoopBackOff"), "{}", r.stderr);
    assert!(
        r.stderr.contains("restarts 1") || r.stderr.contains("restarts=1"),
        "diagnosis names the restart count:\n{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("redis-2: phase Running"),
        "per-pod diagnosis:\n{}",
        r.stderr
    );
    let sts = ns.sts("redis").await;
    assert_eq!(model::partition(&sts), 2, "partition stays at replicas − 1");
    let bad = model::update_revision(&sts).unwrap().to_string();
    let revs = revisions(&ns).await;
    assert_eq!(revs[0].1.as_deref(), Some(old.as_str()));
    assert_eq!(revs[1].1.as_deref(), Some(old.as_str()));
    assert_eq!(
        revs[2].1.as_deref(),
        Some(bad.as_str()),
        "only the top pod is on the new revision"
    );
    let stuck_uid = ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .get("redis-2")
        .await
        .unwrap()
        .uid();

    let rb = ns.plugin(&["rollback", "redis", "--yes"]).await;
    rb.expect_code(0);
    assert!(
        rb.stderr.contains("deleted stuck pod redis-2"),
        "{}",
        rb.stderr
    );
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    assert_eq!(model::partition(&sts), 0);
    assert_eq!(model::current_revision(&sts), Some(old.as_str()));
    for (name, rev, ok) in revisions(&ns).await {
        assert!(ok, "{name} Ready");
        assert_eq!(
            rev.as_deref(),
            Some(old.as_str()),
            "{name} back on the old revision"
        );
    }
    let replaced = ns
        .api::<k8s_openapi::api::core::v1::Pod>()
        .get("redis-2")
        .await
        .unwrap();
    assert_ne!(replaced.uid(), stuck_uid, "the stuck pod was replaced");
    assert_eq!(model::images(&replaced), ["redis:7.2-alpine"]);
}

#[tokio::test]
async fn on_failure_rollback_rolls_back_by_itself() {
    let ns = TestNs::new("canary-autoroll").await;
    ns.ready_redis(2).await;
    let old = model::current_revision(&ns.sts("redis").await)
        .unwrap()
        .to_string();
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-crashloop",
            "--on-failure",
            "rollback",
            "--yes",
        ])
        .await;
    r.expect_code(3);
    assert!(r.stderr.contains("was rolled back"), "{}", r.stderr);
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    assert_eq!(model::current_revision(&sts), Some(old.as_str()));
    assert!(!model::rollout_pending(&sts));
}

#[tokio::test]
async fn never_ready_pod_fails_at_the_step_timeout() {
    let ns = TestNs::new("canary-never").await;
    ns.ready_redis(3).await;
    let started = Instant::now();
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-never-ready",
            "--step-timeout",
            "3s",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    let took = started.elapsed();
    r.expect_code(3);
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "took {took:?}"
    );
    assert!(
        r.stderr
            .contains("step timeout (3s) reached: redis-2 still Running, not Ready"),
        "{}",
        r.stderr
    );
    let report = r.json();
    assert_eq!(report["kind"], "CanaryReport");
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["failure"]["pod"], "redis-2");
    assert_eq!(report["partition"], 2);
    assert_eq!(model::partition(&ns.sts("redis").await), 2);
}

#[tokio::test]
async fn percentage_steps_expose_1_then_3_then_6() {
    let ns = TestNs::new("canary-steps").await;
    ns.ready_redis(6).await;
    let rec = Recorder::start(&ns).await;
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--steps",
            "1,50%,100%",
            "--yes",
            "-o",
            "json",
        ])
        .await;
    r.expect_code(0);
    let steps: Vec<Vec<i64>> = r.json()["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            s["ordinals"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_i64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(steps, vec![vec![5], vec![4, 3], vec![2, 1, 0]]);
    ns.wait_ready("redis", Duration::from_secs(30)).await;
    rec.caught_up().await;
    assert_eq!(rec.partitions("redis"), [0, 6, 5, 3, 0]);
    // The last step exposes three pods at once.
    let check = Check {
        sts: "redis",
        step: 3,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "percentage steps");
}

#[tokio::test]
async fn interrupted_canary_resumes_and_completes() {
    let ns = TestNs::new("canary-sigint").await;
    ns.ready_redis(3).await;
    let rec = Recorder::start(&ns).await;
    let child = ns
        .plugin_command(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--soak",
            "3s",
            "--yes",
        ])
        .spawn()
        .unwrap();
    // Interrupt while the first canary pod soaks.
    ns.eventually(
        Duration::from_secs(20),
        "redis-2 on the new revision",
        || async {
            let sts = ns.sts("redis").await;
            let update = model::update_revision(&sts)?.to_string();
            let p = ns
                .api::<k8s_openapi::api::core::v1::Pod>()
                .get("redis-2")
                .await
                .ok()?;
            (model::current_revision(&sts) != Some(update.as_str())
                && model::revision(&p) == Some(update.as_str())
                && model::is_ready(&p))
            .then_some(())
        },
    )
    .await;
    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--resume"), "prints the resume command: {err}");
    let sts = ns.sts("redis").await;
    assert_eq!(
        model::partition(&sts),
        2,
        "stopped without lowering the partition further"
    );

    let again = ns
        .plugin(&["canary", "redis", "--image", "redis:7.4-alpine", "--yes"])
        .await;
    again.expect_code(0);
    assert!(
        again.stdout.contains("resuming the pending rollout"),
        "{}",
        again.stdout
    );
    assert!(
        again.stdout.contains("Ready for 3s"),
        "the re-run keeps the first run's --soak:\n{}",
        again.stdout
    );
    assert!(
        again
            .stdout
            .contains("resuming with the gates and steps of the run that started"),
        "{}",
        again.stdout
    );
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    assert!(!model::rollout_pending(&sts));
    assert_eq!(model::partition(&sts), 0);
    rec.caught_up().await;
    assert!(rec.max_unavailable(&pod_names("redis", 3)) <= 1);
    // The partition only ever exposed pods that had passed (never jumped below the healthy set).
    assert_eq!(rec.partitions("redis"), [0, 3, 2, 1, 0]);
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check)
        .assert_safe(&check, "interrupted canary, then re-run");
}

#[tokio::test]
async fn concurrent_edit_during_a_step_is_detected() {
    let ns = TestNs::new("canary-race").await;
    ns.ready_redis(3).await;
    let child = ns
        .plugin_command(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--soak",
            "5s",
            "--yes",
        ])
        .spawn()
        .unwrap();
    ns.eventually(
        Duration::from_secs(20),
        "the first step to start",
        || async { (model::partition(&ns.sts("redis").await) == 2).then_some(()) },
    )
    .await;
    ns.patch_sts("redis", serde_json::json!({"spec": {"replicas": 4}}))
        .await;
    let out = child.wait_with_output().await.unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("changed by someone else"), "{err}");
    assert_eq!(
        model::partition(&ns.sts("redis").await),
        2,
        "no further write after the conflict"
    );
}

#[tokio::test]
async fn refusals_and_dry_runs_write_nothing() {
    let ns = TestNs::new("canary-refuse").await;
    ns.ready_redis(2).await;
    let rv = |s: &StatefulSet| s.resource_version().unwrap();
    let before = ns.sts("redis").await;

    let noop = ns
        .plugin(&["canary", "redis", "--image", "redis:7.2-alpine", "--yes"])
        .await;
    noop.expect_code(0);
    assert!(
        noop.stderr.contains("nothing to roll out"),
        "{}",
        noop.stderr
    );

    let started = Instant::now();
    let no_tty = ns
        .plugin(&["canary", "redis", "--image", "redis:7.4-alpine"])
        .await;
    no_tty
        .expect_code(3)
        .expect_one_error_line("no terminal to ask");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refuses at once"
    );

    let dry = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--dry-run",
        ])
        .await;
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("partition → 1") && dry.stdout.contains("partition → 0"),
        "{}",
        dry.stdout
    );
    let server = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--dry-run=server",
            "-o",
            "json",
        ])
        .await;
    server.expect_code(0);
    assert_eq!(server.json()["kind"], "CanaryPlan");
    let bad_image = ns
        .plugin(&["canary", "redis", "--image", "nope=redis:7", "--yes"])
        .await;
    bad_image
        .expect_code(2)
        .expect_one_error_line("has no container \"nope\"");
    assert_eq!(
        rv(&ns.sts("redis").await),
        rv(&before),
        "nothing was written"
    );

    ns.patch_sts("redis", serde_json::json!({"spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}})).await;
    let before = ns.sts("redis").await;
    // Under OnDelete pods are replaced one at a time: steps have no meaning there.
    let ondelete = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--steps",
            "1,100%",
            "--yes",
        ])
        .await;
    ondelete
        .expect_code(2)
        .expect_one_error_line("--steps does not apply when pods are replaced one at a time");
    let no_primary = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--order",
            "primary-last",
            "--yes",
        ])
        .await;
    no_primary
        .expect_code(2)
        .expect_one_error_line("--order primary-last needs the primary");
    // The controller's status writes move the resourceVersion after the patch above:
    // the spec's generation and the annotations say whether the plugin wrote.
    let after = ns.sts("redis").await;
    assert_eq!(
        (after.metadata.generation, after.metadata.annotations),
        (before.metadata.generation, before.metadata.annotations),
        "nothing was written"
    );
}

#[tokio::test]
async fn limited_user_with_the_shipped_role_runs_a_full_canary() {
    let ns = TestNs::new("canary-rbac").await;
    ns.ready_redis(2).await;
    // A role without `patch statefulsets`: the preflight names it before any write.
    ns.apply(
        r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-only}
rules:
- {apiGroups: ["apps"], resources: ["statefulsets", "controllerrevisions"], verbs: ["get", "list", "watch"]}
- {apiGroups: [""], resources: ["pods", "events", "services", "persistentvolumeclaims"], verbs: ["get", "list", "watch", "delete"]}
- {apiGroups: ["policy"], resources: ["poddisruptionbudgets"], verbs: ["get", "list"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-only}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-only}
subjects: [{kind: User, name: sts-safe-limited, apiGroup: rbac.authorization.k8s.io}]
"#,
    )
    .await;
    let before = ns.sts("redis").await.resource_version();
    let denied = ns
        .plugin_as(
            "sts-safe-limited",
            &["canary", "redis", "--image", "redis:7.4-alpine", "--yes"],
        )
        .await;
    denied
        .expect_code(1)
        .expect_one_error_line("cannot patch statefulsets");
    assert_eq!(ns.sts("redis").await.resource_version(), before);

    ns.grant_limited_user().await;
    let ok = ns
        .plugin_as(
            "sts-safe-limited",
            &["canary", "redis", "--image", "redis:7.4-alpine", "--yes"],
        )
        .await;
    ok.expect_code(0);
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    assert!(!model::rollout_pending(&sts));
}

#[tokio::test]
async fn interactive_prompts_on_a_terminal() {
    use crate::support::Pty;
    let ns = TestNs::new("canary-tty").await;
    ns.ready_redis(2).await;
    let before = ns.sts("redis").await.resource_version();

    let mut no = Pty::spawn(&ns, &["canary", "redis", "--image", "redis:7.4-alpine"]);
    no.expect("Start the canary", Duration::from_secs(20)).await;
    no.send("n").await;
    let (code, screen) = no.wait().await;
    assert_eq!(code, 3, "{screen}");
    assert!(
        screen.contains("not confirmed; nothing was changed"),
        "{screen}"
    );
    assert_eq!(
        ns.sts("redis").await.resource_version(),
        before,
        "answering n writes nothing"
    );

    let mut yes = Pty::spawn(&ns, &["canary", "redis", "--image", "redis:7.4-alpine"]);
    yes.expect("Start the canary", Duration::from_secs(20))
        .await;
    yes.send("y").await;
    yes.expect("step 1 passed", Duration::from_secs(30)).await;
    assert_eq!(
        model::partition(&ns.sts("redis").await),
        1,
        "waits at the prompt between steps"
    );
    yes.send("\r").await; // "continue" is the default choice
    let (code, screen) = yes.wait().await;
    assert_eq!(code, 0, "{screen}");
    assert!(screen.contains("done: statefulset \"redis\""), "{screen}");
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    assert!(!model::rollout_pending(&sts));
}

#[tokio::test]
async fn check_cmd_gets_the_pod_environment_and_gates_each_pod() {
    let ns = TestNs::new("canary-check").await;
    ns.ready_redis(3).await;
    let log = std::env::temp_dir().join(format!("{}-check.log", ns.name));
    let _ = std::fs::remove_file(&log);
    let cmd = format!(
        "echo \"$POD_NAME $POD_ORDINAL $NAMESPACE $POD_FQDN\" >> {}",
        log.display()
    );
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine",
            "--check-cmd",
            &cmd,
            "--yes",
        ])
        .await;
    r.expect_code(0);
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let expect: Vec<String> = [2, 1, 0]
        .iter()
        .map(|o| {
            format!(
                "redis-{o} {o} {ns} redis-{o}.redis-headless.{ns}.svc.cluster.local",
                ns = ns.name
            )
        })
        .collect();
    assert_eq!(
        lines, expect,
        "one check per pod, top ordinal first, with the documented environment"
    );

    // A check that fails for ordinal 1 stops the run there, after the step timeout.
    let fail = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-alpine-v2",
            "--check-cmd",
            "test \"$POD_ORDINAL\" != 1",
            "--step-timeout",
            "3s",
            "--yes",
        ])
        .await;
    fail.expect_code(3);
    assert!(
        fail.stderr.contains("--check-cmd exited 1"),
        "{}",
        fail.stderr
    );
    assert!(fail.stderr.contains("redis-1"), "{}", fail.stderr);
    assert_eq!(
        model::partition(&ns.sts("redis").await),
        1,
        "redis-2 and redis-1 exposed, redis-0 not"
    );
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn an_earlier_canary_that_turns_unready_stops_the_run() {
    let ns = TestNs::new("canary-flap").await;
    ns.ready_redis(4).await;
    // Each new pod is Ready, then drops out of Ready 3 s after it started.
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--image",
            "redis:7.4-unready-after-3s",
            "--soak",
            "2s",
            "--yes",
        ])
        .await;
    r.expect_code(3);
    assert!(
        r.stderr
            .contains("redis-3 passed an earlier step but is now"),
        "{}",
        r.stderr
    );
    let partition = model::partition(&ns.sts("redis").await);
    assert!(
        partition >= 1,
        "stopped before the last pod (partition {partition})"
    );
}

#[tokio::test]
async fn rollback_with_nothing_pending_is_a_no_op() {
    let ns = TestNs::new("rollback-noop").await;
    ns.ready_redis(1).await;
    let rv = ns.sts("redis").await.resource_version();
    let r = ns.plugin(&["rollback", "redis", "--yes"]).await;
    r.expect_code(0);
    assert!(r.stderr.contains("nothing to roll back"), "{}", r.stderr);
    assert_eq!(ns.sts("redis").await.resource_version(), rv);
}

#[tokio::test]
async fn patch_file_rolls_out_any_template_change() {
    let ns = TestNs::new("canary-patch").await;
    ns.ready_redis(2).await;
    let dir = std::env::temp_dir().join(&ns.name);
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("env.yaml");
    std::fs::write(
        &good,
        "spec:\n  containers:\n  - name: redis\n    env: [{name: MAXMEMORY, value: 200mb}]\n",
    )
    .unwrap();
    let r = ns
        .plugin(&[
            "canary",
            "redis",
            "--patch",
            good.to_str().unwrap(),
            "--yes",
        ])
        .await;
    r.expect_code(0);
    assert!(
        r.stdout.contains(
            "container redis: env (unset) → [{\"name\":\"MAXMEMORY\",\"value\":\"200mb\"}]"
        ),
        "{}",
        r.stdout
    );
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    let c = &sts.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        c.image.as_deref(),
        Some("redis:7.2-alpine"),
        "strategic merge keeps the other fields"
    );
    assert_eq!(c.env.as_ref().unwrap()[0].name, "MAXMEMORY");

    let rv = ns.sts("redis").await.resource_version();
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "spec:\n  containers: 7\n").unwrap();
    let r = ns
        .plugin(&["canary", "redis", "--patch", bad.to_str().unwrap(), "--yes"])
        .await;
    r.expect_code(2).expect_one_error_line("was rejected");
    let missing = ns
        .plugin(&["canary", "redis", "--patch", "/nonexistent.yaml", "--yes"])
        .await;
    missing
        .expect_code(2)
        .expect_one_error_line("--patch \"/nonexistent.yaml\"");
    assert_eq!(ns.sts("redis").await.resource_version(), rv);
    let _ = std::fs::remove_dir_all(dir);
}

/// Two `--resume` at the same moment: the StatefulSet's lock lets one through; the other
/// stops before writing, naming it (or, had both passed the lock, on the conflict).
#[tokio::test]
async fn two_concurrent_resumers_one_stops_on_the_conflict() {
    let ns = TestNs::new("canary-two").await;
    ns.ready_redis(3).await;
    // A rollout left pending after its first step.
    ns.patch_sts(
        "redis",
        serde_json::json!({"spec": {
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
            "template": {"spec": {"containers": [{"name": "redis", "image": "redis:7.4-alpine"}]}}
        }}),
    )
    .await;
    ns.eventually(Duration::from_secs(30), "redis-2 updated", || async {
        let sts = ns.sts("redis").await;
        let p = ns
            .api::<k8s_openapi::api::core::v1::Pod>()
            .get("redis-2")
            .await
            .ok()?;
        (model::rollout_pending(&sts)
            && model::revision(&p) == model::update_revision(&sts)
            && model::is_ready(&p))
        .then_some(())
    })
    .await;
    let args = ["canary", "redis", "--resume", "--soak", "2s", "--yes"];
    let (a, b) = tokio::join!(
        ns.plugin_command(&args).output(),
        ns.plugin_command(&args).output()
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    codes.sort();
    let stderr = format!(
        "{}\n---\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );
    assert_eq!(codes, [0, 3], "one completes, the other stops:\n{stderr}");
    assert!(stderr.contains("is being changed by"), "{stderr}");
    let sts = ns.wait_ready("redis", Duration::from_secs(30)).await;
    assert!(!model::rollout_pending(&sts));
}
