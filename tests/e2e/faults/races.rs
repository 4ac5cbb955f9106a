//! Fault family 3, races with other clients: the template, replicas, a verified pod
//! deleted, two copies of the plugin, and a scale-up between prune's plan and its deletes.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use rand::Rng;
use sts_safe::model;
use sts_safe::plan::prune::has_hold;

use super::*;
use crate::support::{images_of, template_of, Check, Pty, Recorder, TestNs};

/// Another client edits the template while a step runs: the canary stops at once
/// without lowering the partition further, the edit survives, and `--resume` completes
/// the rollout of the edited template.
#[tokio::test]
async fn another_client_edits_the_template_during_a_step() {
    let ns = TestNs::new("fault-edit").await;
    ns.ready_redis(3).await;
    let rec = Recorder::start(&ns).await;
    let image = "redis:e1-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 2).await;
    let edited = ns
        .api::<StatefulSet>()
        .patch(
            "redis",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"template": {"metadata": {"annotations": {"other-client": "edited"}}}}})),
        )
        .await
        .expect("the other client's edit");
    let edit_rv: u64 = edited.resource_version().unwrap().parse().unwrap();
    let out = finish(child, &args).await;
    expect_code(&out, 3, "a canary whose template is edited by someone else");
    let last = last_line(&out.stderr);
    assert!(last.contains("changed by someone else"), "{last}");
    assert!(last.contains("partition stays at 2"), "{last}");
    assert!(last.contains("--resume"), "{last}");
    let sts = ns.sts("redis").await;
    assert_eq!(model::partition(&sts), 2);
    rec.caught_up().await;
    assert!(
        rec.partitions_after("redis", edit_rv)
            .iter()
            .all(|p| *p == 2),
        "no partition write after the other client's edit: {:?}",
        rec.partitions_after("redis", edit_rv)
    );

    let want = template_of(&sts);
    assert_eq!(want["metadata"]["annotations"]["other-client"], "edited");
    assert_eq!(images_of(&want), [image]);
    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "resume after the edit");
    expect_converged(&ns, &want, "resume after the edit").await;
    rec.caught_up().await;
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check)
        .assert_safe(&check, "template edit race");
}

/// Another client (an autoscaler) changes replicas during a step: the canary stops, the
/// new replica count is kept, and `--resume` updates all four pods.
#[tokio::test]
async fn another_client_changes_replicas_during_a_step() {
    let ns = TestNs::new("fault-replicas").await;
    ns.ready_redis(3).await;
    let rec = Recorder::start(&ns).await;
    let before = template_of(&ns.sts("redis").await);
    let image = "redis:e2-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 2).await;
    ns.patch_sts("redis", serde_json::json!({"spec": {"replicas": 4}}))
        .await;
    let out = finish(child, &args).await;
    expect_code(&out, 3, "a canary whose replicas change");
    let last = last_line(&out.stderr);
    assert!(last.contains("changed by someone else"), "{last}");
    assert!(last.contains("--resume"), "{last}");
    assert_eq!(
        ns.sts("redis").await.spec.replicas,
        Some(4),
        "the other client's value stays"
    );

    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "resume after the replica change");
    let sts = expect_converged(
        &ns,
        &with_image(&before, image),
        "resume after the replica change",
    )
    .await;
    assert_eq!(sts.spec.replicas, Some(4), "no lost update of replicas");
    rec.caught_up().await;
    // The step's pod and the pod the other client added can be unavailable together.
    let check = Check {
        sts: "redis",
        step: 2,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "replicas race");
}

/// Another client deletes a canary pod that already passed its gate while the next step
/// runs: the canary stops (never lowering the partition while that pod is down), and
/// `--resume` re-verifies it and completes.
#[tokio::test]
async fn another_client_deletes_a_verified_pod_during_a_step() {
    let ns = TestNs::new("fault-delpod").await;
    ns.ready_redis(3).await;
    let rec = Recorder::start(&ns).await;
    let before = template_of(&ns.sts("redis").await);
    let image = "redis:e3-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 1).await; // redis-2 passed, step 2 (redis-1) runs
    ns.api::<Pod>()
        .delete("redis-2", &DeleteParams::default())
        .await
        .expect("the other client's delete");
    let out = finish(child, &args).await;
    expect_code(&out, 3, "a canary whose verified pod is deleted");
    let last = last_line(&out.stderr);
    assert!(last.contains("redis-2"), "names the pod: {last}");
    assert!(last.contains("--resume"), "{last}");

    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "resume after the pod delete");
    expect_converged(
        &ns,
        &with_image(&before, image),
        "resume after the pod delete",
    )
    .await;
    rec.caught_up().await;
    let check = Check {
        sts: "redis",
        step: 2, // the step's pod + the deleted one
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "pod delete race");
}

/// Two copies of the plugin on one StatefulSet. The plugin's behaviour (and what this
/// test pins down): a second `canary --image Y` while a rollout is pending refuses with
/// exit 3, writes nothing and names `--resume` and `rollback`; a second copy asking for the
/// same template resumes the pending rollout, and the two coordinate through the
/// StatefulSet's generation: the first partition write by either makes the other stop
/// with exit 3 ("changed by someone else") before it writes again, so exactly one finishes.
#[tokio::test]
async fn two_copies_on_the_same_statefulset() {
    let ns = TestNs::new("fault-twice").await;
    ns.ready_redis(3).await;
    let rec = Recorder::start(&ns).await;
    let before = template_of(&ns.sts("redis").await);
    let image = "redis:e4-ready-after-1s";
    let other = "redis:e5-ready-after-1s";
    let args = ["canary", "redis", "--image", image, "--yes"];
    let first = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    wait_partition(&ns, 2).await;

    let refused = plugin(&ns, ADMIN, &["canary", "redis", "--image", other, "--yes"]).await;
    expect_code(&refused, 3, "a second canary with another image");
    refused.expect_one_error_line(LOCKED);
    assert!(
        refused.stderr.contains("canary redis --image"),
        "{}",
        refused.stderr
    );

    let second = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
    let (a, b) = futures::join!(finish(first, &args), finish(second, &args));
    let mut codes = [a.code, b.code];
    codes.sort();
    assert_eq!(
        codes,
        [0, 3],
        "exactly one copy finishes, the other stops\nfirst:\n{}\nsecond:\n{}",
        a.stderr,
        b.stderr
    );
    let stopped = if a.code == 3 { &a } else { &b };
    assert!(
        last_line(&stopped.stderr).contains(LOCKED),
        "{}",
        stopped.stderr
    );
    let runs = complete_canary(&ns, image, true).await;
    expect_all_ok(&runs, "after two copies");
    expect_converged(&ns, &with_image(&before, image), "after two copies").await;
    rec.caught_up().await;
    assert!(
        !rec.saw_image("redis", other),
        "the refused copy never wrote its template"
    );
    let check = Check {
        sts: "redis",
        step: 1,
        rollback_to: vec![],
    };
    rec.analyse(&check).assert_safe(&check, "two copies");
}

/// A scale-up between prune's plan and its deletes: through the prompt (deterministic),
/// then with `--yes` and a scale-up at a random moment (ceil(N/5) trials). Whatever the
/// timing, no PVC is marked for deletion while its ordinal is live or a pod mounts it,
/// unless prune's hold keeps it (a scale-up landing between the final re-read and the
/// delete): then the run reports it `held` and the claim keeps its volume.
#[tokio::test]
async fn scale_up_between_prune_plan_and_delete() {
    let ns = TestNs::new("fault-prune").await;
    let mut rng = seeded("prune vs scale-up", fault_trials().div_ceil(5));
    ns.ready_redis(4).await;
    scale_with_kubectl(&ns, 2).await;
    let check = Check {
        sts: "redis",
        step: 2, // the scale-up adds two pods at once
        rollback_to: vec![],
    };

    let rec = Recorder::start(&ns).await;
    let uids: Vec<_> = ns.pvcs().await.iter().map(|p| p.uid()).collect();
    let mut pty = Pty::spawn(&ns, &["prune-pvcs", "redis"]);
    pty.expect("Delete 2 PVC(s)", WAIT).await;
    ns.kubectl(&["scale", "statefulset", "redis", "--replicas=4"])
        .expect_code(0);
    pty.send("y").await;
    let (code, screen) = pty.wait().await;
    assert_eq!(code, 3, "planned PVCs were not deleted: {screen}");
    ns.wait_ready("redis", WAIT).await;
    let after: Vec<_> = ns.pvcs().await.iter().map(|p| p.uid()).collect();
    assert_eq!(after, uids, "every PVC kept, same uids");
    rec.caught_up().await;
    rec.analyse(&check)
        .assert_safe(&check, "prune through the prompt");

    for t in 0..fault_trials().div_ceil(5) {
        scale_with_kubectl(&ns, 2).await;
        let rec = Recorder::start(&ns).await;
        let args = ["prune-pvcs", "redis", "--yes"];
        let child = plugin_cmd(&ns, ADMIN, &args).spawn().unwrap();
        let delay = rng.random_range(0..160);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        ns.patch_sts("redis", serde_json::json!({"spec": {"replicas": 4}}))
            .await;
        let out = finish(child, &args).await;
        let what = format!("prune trial {t} (scale-up after {delay} ms)");
        assert!(
            out.code == 0 || out.code == 3,
            "{what}: exit {}\n{}\n{}",
            out.code,
            out.stdout,
            out.stderr
        );
        eprintln!("{what}: exit {}", out.code);
        rec.caught_up().await;
        rec.analyse(&check).assert_safe(&check, &what);
        // A delete that lost the race stays held with its volume (the controller starts
        // no pod on it): check what the run said, then drop the claim for the next trial.
        for pvc in ns.pvcs().await.iter().filter(|p| has_hold(p)) {
            let name = pvc.name_any();
            eprintln!("{what}: {name} held\n{}", out.stdout);
            assert!(
                out.code == 3 && out.stdout.contains(&format!("held {name}: ")),
                "{what}: {name} held without being reported\n{}",
                out.stdout
            );
            assert!(
                pvc.metadata.deletion_timestamp.is_some()
                    && pvc
                        .spec
                        .as_ref()
                        .and_then(|s| s.volume_name.as_ref())
                        .is_some()
            );
            let drop = r#"[{"op":"remove","path":"/metadata/finalizers"}]"#;
            ns.kubectl(&["patch", "pvc", &name, "--type", "json", "-p", drop])
                .expect_code(0);
        }
        ns.wait_ready("redis", WAIT).await;
    }
}
