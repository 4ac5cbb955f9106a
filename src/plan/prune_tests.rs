//! Fixture tests of the prune plan, its re-checks and its report.

use super::*;
use crate::fixtures;
use crate::render::prune::render_summary;
use crate::render::Report;

fn inputs(ns: Option<&str>) -> PruneInputs {
    let f = fixtures::load("prune/mixed.yaml");
    let keep = |o: &Option<String>| ns.is_none() || o.as_deref() == ns;
    PruneInputs {
        statefulsets: f
            .statefulsets()
            .into_iter()
            .filter(|s| keep(&s.metadata.namespace))
            .collect(),
        pods: f
            .pods()
            .into_iter()
            .filter(|s| keep(&s.metadata.namespace))
            .collect(),
        pvcs: f
            .pvcs()
            .into_iter()
            .filter(|s| keep(&s.metadata.namespace))
            .collect(),
        pvs: Some(f.all("PersistentVolume")),
    }
}

fn shop() -> Scope {
    Scope {
        namespace: Some("shop".into()),
        statefulset_exists: true,
        ..Scope::default()
    }
}

fn names(entries: &[PlanEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.name.as_str()).collect()
}

fn skipped<'a>(p: &'a PrunePlan, code: &str) -> Vec<&'a str> {
    p.skipped
        .iter()
        .filter(|s| s.code == code)
        .map(|s| s.name.as_str())
        .collect()
}

#[test]
fn proposes_exactly_the_scaled_down_ordinals_without_cross_attribution() {
    let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
    assert_eq!(
        names(&p.pvcs),
        [
            "vol2-db3-10",
            "redis-data-redis-2",
            "redis-data-redis-3",
            "redis-data-redis-4",
            "data-web-3",
            "data-web-web-2",
            "data-web-1-4"
        ]
    );
    let owner: Vec<_> = p
        .pvcs
        .iter()
        .map(|e| {
            (
                e.statefulset.as_deref().unwrap(),
                e.template.as_deref().unwrap(),
                e.ordinal,
            )
        })
        .collect();
    assert!(owner.contains(&("web", "data", 3)));
    assert!(owner.contains(&("web", "data-web", 2)));
    assert!(owner.contains(&("web-1", "data", 4)));
    assert!(owner.contains(&("db3", "vol2", 10)));
    assert!(p.gone.is_empty(), "the gone group needs --include-deleted");
    assert_eq!(p.total.count, 7);
    // 10+20+10 (redis) + 3×1 (web) + 5 (db3)
    assert_eq!(p.total.capacity, "48Gi");
    assert_eq!(p.total.bytes, 48 * 1024u64.pow(3));
}

#[test]
fn reclaim_policy_is_spelled_out() {
    let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
    let by_name = |n: &str| p.pvcs.iter().find(|e| e.name == n).unwrap();
    let r2 = by_name("redis-data-redis-2");
    assert_eq!(r2.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(r2.consequence, "Delete: the data is destroyed");
    assert_eq!(r2.volume.as_deref(), Some("pv-r2"));
    assert_eq!(r2.storage_class.as_deref(), Some("sim-standard"));
    assert_eq!(r2.phase, "Bound");
    assert_eq!(
        (r2.uid.as_deref(), r2.resource_version.as_deref()),
        (Some("u-r2"), Some("102"))
    );
    assert_eq!(r2.age_seconds, Some(19 * 86400 + 12 * 3600));
    let r3 = by_name("redis-data-redis-3");
    assert_eq!(
        r3.consequence,
        "Retain: the PV stays Released and must be cleaned up by hand"
    );
    let r4 = by_name("redis-data-redis-4");
    assert_eq!(
        (r4.reclaim_policy.as_deref(), r4.phase.as_str()),
        (None, "Pending")
    );
    assert!(r4.consequence.contains("no PV bound"));

    let mut forbidden = inputs(Some("shop"));
    forbidden.pvs = None;
    let p = plan(&forbidden, &shop(), fixtures::now());
    let r2 = p
        .pvcs
        .iter()
        .find(|e| e.name == "redis-data-redis-2")
        .unwrap();
    assert_eq!(r2.reclaim_policy.as_deref(), Some("unknown"));
    assert!(r2.consequence.starts_with("unknown"));
}

#[test]
fn mounted_scaled_to_zero_and_live_claims_are_not_proposed() {
    let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
    assert_eq!(skipped(&p, "mounted"), ["redis-data-redis-5"]);
    let mounted = p.skipped.iter().find(|s| s.code == "mounted").unwrap();
    assert_eq!(mounted.reason, "mounted by pod \"debug\"");
    assert_eq!(
        skipped(&p, "scaled-to-zero"),
        ["data-idle-0", "data-idle-1"]
    );
    let all: Vec<&str> = names(&p.pvcs)
        .into_iter()
        .chain(p.skipped.iter().map(|s| s.name.as_str()))
        .collect();
    for live in [
        "redis-data-redis-0",
        "redis-data-redis-1",
        "data-web-0",
        "data-web-web-0",
        "data-web-1-0",
        "vol2-db3-0",
        "scratch",
    ] {
        assert!(!all.contains(&live), "{live} must not appear");
    }
    let with_zero = Scope {
        include_scaled_to_zero: true,
        ..shop()
    };
    let p = plan(&inputs(Some("shop")), &with_zero, fixtures::now());
    assert!(names(&p.pvcs).contains(&"data-idle-0") && names(&p.pvcs).contains(&"data-idle-1"));
    assert!(skipped(&p, "scaled-to-zero").is_empty());
}

#[test]
fn a_named_statefulset_restricts_the_plan() {
    let scope = Scope {
        statefulset: Some("web".into()),
        ..shop()
    };
    let p = plan(&inputs(Some("shop")), &scope, fixtures::now());
    assert_eq!(names(&p.pvcs), ["data-web-3", "data-web-web-2"]);
    assert!(p.skipped.is_empty());
    let idle = Scope {
        statefulset: Some("idle".into()),
        ..shop()
    };
    let p = plan(&inputs(Some("shop")), &idle, fixtures::now());
    assert!(p.pvcs.is_empty());
    assert!(p
        .text()
        .contains("StatefulSet idle is scaled to 0: skipped, its 2 PVC(s) are kept"));
}

#[test]
fn statefulset_gone_group_only_with_include_deleted() {
    let scope = Scope {
        include_deleted: true,
        ..shop()
    };
    let p = plan(&inputs(Some("shop")), &scope, fixtures::now());
    assert_eq!(names(&p.gone), ["pg-data-pg-0", "pg-data-pg-1"]);
    assert_eq!(p.gone[0].claim_prefix.as_deref(), Some("pg-data-pg"));
    assert_eq!(p.gone[0].statefulset, None);
    assert_eq!(p.gone_total.capacity, "16Gi");
    assert!(!names(&p.pvcs).contains(&"pg-data-pg-0"));
    // Named after the gone StatefulSet: only its claims.
    let named = Scope {
        statefulset: Some("pg".into()),
        statefulset_exists: false,
        ..scope.clone()
    };
    let p = plan(&inputs(Some("shop")), &named, fixtures::now());
    assert!(p.pvcs.is_empty());
    assert_eq!(names(&p.gone), ["pg-data-pg-0", "pg-data-pg-1"]);
    let other = Scope {
        statefulset: Some("mysql".into()),
        statefulset_exists: false,
        ..scope
    };
    assert!(plan(&inputs(Some("shop")), &other, fixtures::now())
        .gone
        .is_empty());
}

#[test]
fn older_than_keeps_young_pvcs() {
    let scope = Scope {
        older_than: Some(Duration::from_secs(7 * 86400)),
        ..shop()
    };
    let p = plan(&inputs(Some("shop")), &scope, fixtures::now());
    assert!(!names(&p.pvcs).contains(&"data-web-1-4"));
    assert_eq!(skipped(&p, "too-young"), ["data-web-1-4"]);
    let s = p.skipped.iter().find(|s| s.code == "too-young").unwrap();
    assert_eq!(s.reason, "younger than --older-than 7days (age 60m)");
}

#[test]
fn all_namespaces_judges_mounts_per_namespace() {
    let scope = Scope {
        namespace: None,
        statefulset_exists: true,
        ..Scope::default()
    };
    let p = plan(&inputs(None), &scope, fixtures::now());
    let other: Vec<_> = p
        .pvcs
        .iter()
        .filter(|e| e.namespace == "other")
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(other, ["redis-data-redis-1"]);
    // "reader" in namespace other mounts a claim named redis-data-redis-2: not shop's.
    assert!(p
        .pvcs
        .iter()
        .any(|e| e.namespace == "shop" && e.name == "redis-data-redis-2"));
    let text = p.text();
    assert!(text.contains("in all namespaces"), "{text}");
    assert!(
        text.lines().nth(1).unwrap().starts_with("NAMESPACE  PVC"),
        "{text}"
    );
    assert!(
        text.contains("shop/data-idle-0") || text.contains("StatefulSet shop/idle is scaled to 0"),
        "{text}"
    );
}

#[test]
fn text_plan_has_the_table_and_totals() {
    console::set_colors_enabled(false);
    let scope = Scope {
        include_deleted: true,
        ..shop()
    };
    let text = plan(&inputs(Some("shop")), &scope, fixtures::now()).text();
    let header = text.lines().nth(1).unwrap();
    assert!(header.starts_with("PVC "), "{text}");
    for col in [
        "STATEFULSET",
        "ORDINAL",
        "CAPACITY",
        "STORAGECLASS",
        "VOLUME",
        "RECLAIM POLICY",
        "AGE",
        "PHASE",
    ] {
        assert!(header.contains(col), "{col} in {header}");
    }
    assert!(
        text.contains("PVCs orphaned by scale-down in namespace \"shop\":"),
        "{text}"
    );
    assert!(text.contains("Total: 7 PVC(s), 48Gi"), "{text}");
    assert!(text.contains("Delete: the data is destroyed"), "{text}");
    assert!(text.contains("StatefulSet gone:"), "{text}");
    assert!(text.contains("Total: 2 PVC(s), 16Gi"), "{text}");
    assert!(
        text.contains(
            "redis-data-redis-5 (StatefulSet redis, ordinal 5): mounted by pod \"debug\""
        ),
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("redis-data-redis-2 "))
        .unwrap();
    for cell in [
        "redis",
        "2",
        "10Gi",
        "sim-standard",
        "pv-r2",
        "19d",
        "Bound",
    ] {
        assert!(row.split_whitespace().any(|c| c == cell), "{cell} in {row}");
    }
}

#[test]
fn json_plan_shape() {
    let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
    let v = serde_json::to_value(&p).unwrap();
    assert_eq!(v["apiVersion"], "sts-safe/v1");
    assert_eq!(v["kind"], "PrunePlan");
    assert_eq!(v["namespace"], "shop");
    let e = &v["pvcs"][1];
    for key in [
        "name",
        "statefulset",
        "template",
        "ordinal",
        "capacity",
        "storageClass",
        "volume",
        "reclaimPolicy",
        "consequence",
        "ageSeconds",
        "phase",
        "uid",
        "resourceVersion",
    ] {
        assert!(e.get(key).is_some(), "{key} missing in {e}");
    }
    assert!(e.get("claimPrefix").is_none());
    assert_eq!(v["total"]["count"], 7);
    assert_eq!(v["skipped"][0]["code"], "scaled-to-zero");
}

#[test]
fn deletion_goes_from_the_highest_ordinal_down() {
    let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
    let order: Vec<_> = deletion_order(&p, true, false)
        .into_iter()
        .filter(|(_, e)| e.statefulset.as_deref() == Some("redis"))
        .map(|(_, e)| e.ordinal)
        .collect();
    assert_eq!(order, [4, 3, 2]);
}

fn redis_sts(replicas: i32) -> StatefulSet {
    let mut s = inputs(Some("shop")).statefulsets.remove(0);
    s.spec.replicas = Some(replicas);
    s
}

#[test]
fn recheck_catches_scale_up_new_mounts_and_deletion() {
    let inp = inputs(Some("shop"));
    let p = plan(&inp, &shop(), fixtures::now());
    let e = p
        .pvcs
        .iter()
        .find(|e| e.name == "redis-data-redis-2")
        .unwrap();
    let pvc = inp.pvcs.iter().find(|x| x.name_any() == e.name).unwrap();
    let opts = OrphanRules::default();
    assert_eq!(
        recheck_orphan(e, Some(&redis_sts(2)), pvc, &inp.pods, opts),
        None
    );
    assert_eq!(
        recheck_orphan(e, Some(&redis_sts(3)), pvc, &inp.pods, opts).unwrap(),
        "StatefulSet \"redis\" scaled up to 3 since the plan: ordinal 2 is live again"
    );
    assert_eq!(
        recheck_orphan(e, Some(&redis_sts(0)), pvc, &inp.pods, opts).unwrap(),
        "StatefulSet \"redis\" was scaled to 0 since the plan"
    );
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "restore", "namespace": "shop"},
        "spec": {"containers": [], "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": "redis-data-redis-2"}}]}
    }))
    .unwrap();
    assert_eq!(
        recheck_orphan(
            e,
            Some(&redis_sts(2)),
            pvc,
            std::slice::from_ref(&pod),
            opts
        )
        .unwrap(),
        "now mounted by pod \"restore\""
    );
    assert_eq!(
        recheck_orphan(e, None, pvc, &inp.pods, opts).unwrap(),
        "StatefulSet \"redis\" was deleted since the plan"
    );
    let mut recreated = redis_sts(2);
    recreated.metadata.uid = Some("another".into());
    assert!(e.statefulset_uid.is_some());
    assert_eq!(
        recheck_orphan(e, Some(&recreated), pvc, &inp.pods, opts).unwrap(),
        "StatefulSet \"redis\" was deleted and re-created since the plan (another uid): re-run to plan again"
    );
    let gone = inp
        .pvcs
        .iter()
        .find(|x| x.name_any() == "pg-data-pg-0")
        .unwrap();
    assert_eq!(recheck_gone(&inp.statefulsets, gone, &[]), None);
    let mut pg_pod = pod;
    pg_pod.spec.as_mut().unwrap().volumes.as_mut().unwrap()[0]
        .persistent_volume_claim
        .as_mut()
        .unwrap()
        .claim_name = "pg-data-pg-0".into();
    assert_eq!(
        recheck_gone(&inp.statefulsets, gone, &[pg_pod]).unwrap(),
        "now mounted by pod \"restore\""
    );
}

fn outcome(result: Status) -> Outcome {
    Outcome {
        namespace: "ns".into(),
        name: "x".into(),
        group: Group::Orphan,
        result,
        reason: None,
        capacity: Some("10Gi".into()),
    }
}

#[test]
fn exit_code_is_3_when_anything_planned_was_not_deleted() {
    assert_eq!(exit_code(&[]), 0);
    assert_eq!(
        exit_code(&[outcome(Status::Deleted), outcome(Status::Deleted)]),
        0
    );
    assert_eq!(exit_code(&[outcome(Status::Validated)]), 0);
    assert_eq!(
        exit_code(&[outcome(Status::Deleted), outcome(Status::Skipped)]),
        3
    );
    assert_eq!(exit_code(&[outcome(Status::NotAttempted)]), 3);
    let s = summarize(&[
        outcome(Status::Deleted),
        outcome(Status::Deleted),
        outcome(Status::Skipped),
    ]);
    assert_eq!(
        (s.deleted, s.skipped, s.deleted_capacity.as_str()),
        (2, 1, "20Gi")
    );
    assert_eq!(render_summary(&s), "Deleted 2 PVC(s) (20Gi), 1 skipped.\n");
}

#[test]
fn the_question_names_count_size_and_destroyed_data() {
    let p = plan(&inputs(Some("shop")), &shop(), fixtures::now());
    let q = question("", &p.total, &p.pvcs);
    assert_eq!(
        q,
        "Delete 7 PVC(s), 48Gi in total; the data of 1 is destroyed (reclaim policy Delete)?"
    );
}

/// Marks `name` for deletion, with prune's hold when `hold`.
fn mark(inp: &mut PruneInputs, name: &str, hold: bool) {
    let pvc = inp.pvcs.iter_mut().find(|p| p.name_any() == name).unwrap();
    pvc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        fixtures::now(),
    ));
    pvc.metadata.finalizers = Some(finalizers_with_hold(pvc, hold));
    if !hold {
        pvc.metadata.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
    }
}

#[test]
fn a_claim_an_earlier_run_held_is_planned_again_to_be_finished() {
    let mut inp = inputs(Some("shop"));
    mark(&mut inp, "redis-data-redis-3", true);
    mark(&mut inp, "redis-data-redis-4", false);
    let p = plan(&inp, &shop(), fixtures::now());
    let held: Vec<_> = p.pvcs.iter().filter(|e| e.held).map(|e| &e.name).collect();
    assert_eq!(held, ["redis-data-redis-3"], "held and orphaned: finish it");
    assert_eq!(
        skipped(&p, "deleting"),
        ["redis-data-redis-4"],
        "marked by someone else"
    );
    let text = p.text();
    assert!(text.contains("Bound (held by an earlier run)"), "{text}");
    // --older-than does not undo a mark.
    let scope = Scope {
        older_than: Some(Duration::from_secs(10 * 365 * 86400)),
        ..shop()
    };
    let p = plan(&inp, &scope, fixtures::now());
    assert_eq!(names(&p.pvcs), ["redis-data-redis-3"]);
}

#[test]
fn a_held_claim_whose_ordinal_is_live_again_is_reported_not_dropped() {
    let mut inp = inputs(Some("shop"));
    mark(&mut inp, "redis-data-redis-3", true);
    inp.statefulsets
        .iter_mut()
        .find(|s| s.name_any() == "redis")
        .unwrap()
        .spec
        .replicas = Some(4);
    let p = plan(&inp, &shop(), fixtures::now());
    assert!(!names(&p.pvcs).contains(&"redis-data-redis-3"));
    let s = p.skipped.iter().find(|s| s.code == "held").unwrap();
    assert_eq!(s.name, "redis-data-redis-3");
    assert!(
        s.reason.contains("ordinal 3 became live again")
            && s.reason.contains(HOLD)
            && s.reason.contains("A prune that raced a scale-up"),
        "{}",
        s.reason
    );
    // An unheld live claim is never listed at all.
    assert!(!p.skipped.iter().any(|s| s.name == "redis-data-redis-0"));
}

#[test]
fn the_hold_is_added_once_and_removed_alone() {
    let inp = inputs(Some("shop"));
    let mut pvc = inp.pvcs[0].clone();
    pvc.metadata.finalizers = Some(vec!["kubernetes.io/pvc-protection".into()]);
    let with = finalizers_with_hold(&pvc, true);
    assert_eq!(with, ["kubernetes.io/pvc-protection", HOLD]);
    pvc.metadata.finalizers = Some(with);
    assert_eq!(finalizers_with_hold(&pvc, true).len(), 2, "never twice");
    assert_eq!(
        finalizers_with_hold(&pvc, false),
        ["kubernetes.io/pvc-protection"]
    );
    assert!(has_hold(&pvc) && !is_held(&pvc), "held but not marked");
    assert_eq!(unmarked(&pvc), pvc);
    pvc.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        fixtures::now(),
    ));
    assert!(is_held(&pvc));
    assert!(unmarked(&pvc).metadata.deletion_timestamp.is_none());
    let s = summarize(&[outcome(Status::Held), outcome(Status::Deleted)]);
    assert_eq!(s.held, 1);
    assert_eq!(exit_code(&[outcome(Status::Held)]), 3);
    assert_eq!(
        render_summary(&s),
        "Deleted 1 PVC(s) (10Gi), 1 held after a race (volume kept).\n"
    );
}
