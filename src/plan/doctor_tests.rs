//! Every doctor check, from YAML fixtures under tests/fixtures/doctor/: `clean.yaml` is
//! the passing fixture for all of them, and each `<check-id>*.yaml` is a copy of it with
//! exactly one thing broken.

use std::collections::BTreeSet;

use super::*;
use crate::fixtures::{self, Fixture};

fn inputs(f: &Fixture) -> DoctorInputs {
    DoctorInputs {
        statefulsets: f.all("StatefulSet"),
        pods: f.all("Pod"),
        pvcs: f.all("PersistentVolumeClaim"),
        services: f.all("Service"),
        pdbs: f.all("PodDisruptionBudget"),
        events: f.all("Event"),
        deployments: f.all("Deployment"),
        storage_classes: Some(f.all("StorageClass")),
        leases: f.all("Lease"),
        nodes: f
            .all::<k8s_openapi::api::core::v1::Node>("Node")
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect(),
    }
}

fn load(file: &str) -> DoctorInputs {
    inputs(&fixtures::load(&format!("doctor/{file}")))
}

pub(crate) fn diagnose_file(file: &str) -> Vec<Finding> {
    examine(&load(file), None, fixtures::now())
}

fn checks(findings: &[Finding]) -> BTreeSet<&'static str> {
    findings.iter().map(|f| f.check).collect()
}

/// The single finding of a fixture that breaks exactly one thing.
fn only_finding(file: &str, check: &str) -> Finding {
    let found = diagnose_file(file);
    assert_eq!(
        checks(&found),
        BTreeSet::from([check]),
        "{file}: {found:#?}"
    );
    assert_eq!(found.len(), 1, "{file}: {found:#?}");
    found.into_iter().next().unwrap()
}

fn assert_mentions(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} does not mention {p:?}");
    }
}

// ---- the passing fixture --------------------------------------------------------

#[test]
fn clean_fixture_has_no_findings() {
    let inp = load("clean.yaml");
    assert_eq!(inp.statefulsets.len(), 1);
    assert_eq!(inp.pods.len(), 3);
    assert_eq!(inp.pvcs.len(), 4);
    assert_eq!(inp.services.len(), 1);
    assert_eq!(inp.pdbs.len(), 1);
    assert_eq!(inp.deployments.len(), 1);
    assert_eq!(inp.storage_classes.as_ref().map(Vec::len), Some(1));
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);
    assert_eq!(examine(&inp, Some("redis"), fixtures::now()), vec![]);
}

#[test]
fn clean_fixture_without_storage_class_access_has_no_findings() {
    let mut inp = load("clean.yaml");
    inp.storage_classes = None;
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);
}

/// Every check id that doctor.rs can emit has a failing fixture named after it.
#[test]
fn every_check_id_has_a_failing_fixture() {
    let src = include_str!("doctor.rs");
    let mut ids = BTreeSet::new();
    for chunk in src.split("Severity::").skip(1) {
        // `Severity::Error,\n "check-id",` inside a `finding(..)` call.
        let Some(rest) = chunk.split_once(',').map(|(_, r)| r.trim_start()) else {
            continue;
        };
        let Some(rest) = rest.strip_prefix('"') else {
            continue;
        };
        let id = rest.split('"').next().unwrap();
        if !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
            ids.insert(id.to_string());
        }
    }
    assert!(ids.len() >= 17, "parsed too few check ids: {ids:?}");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for id in &ids {
        let fixture = files
            .iter()
            .find(|f| f.as_str() == format!("{id}.yaml") || f.starts_with(&format!("{id}-")));
        let Some(fixture) = fixture else {
            panic!("no fixture for check {id}")
        };
        assert!(
            checks(&diagnose_file(fixture)).contains(id.as_str()),
            "{fixture} does not fire {id}"
        );
    }
}

// ---- service ---------------------------------------------------------------------

#[test]
fn service_missing() {
    let f = only_finding("service-missing.yaml", "service-missing");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "statefulset/redis");
    assert_mentions(
        &f.problem,
        &["serviceName \"redis-headless\" names no Service"],
    );
    assert_mentions(
        &f.fix,
        &[
            "headless Service named \"redis-headless\"",
            "clusterIP: None",
        ],
    );
}

#[test]
fn service_missing_when_service_name_is_empty() {
    let mut inp = load("clean.yaml");
    inp.statefulsets[0].spec.service_name = None;
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["service-missing"]),
        "{found:#?}"
    );
    assert_eq!(found[0].object, "statefulset/redis");
    assert_mentions(&found[0].problem, &["spec.serviceName is empty"]);
}

#[test]
fn service_not_headless() {
    let f = only_finding("service-not-headless.yaml", "service-not-headless");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "service/redis-headless");
    assert_mentions(
        &f.problem,
        &[
            "\"redis-headless\"",
            "clusterIP 10.96.112.7",
            "not headless",
        ],
    );
    assert_mentions(&f.fix, &["clusterIP: None"]);
}

#[test]
fn service_selector() {
    let f = only_finding("service-selector.yaml", "service-selector");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "service/redis-headless");
    assert_eq!(
        f.problem,
        "Service \"redis-headless\" selector app=redis-cache does not match the pod template labels app=redis"
    );
}

// ---- pods ------------------------------------------------------------------------

const PROVISIONING_EVENT: &str = "ExternalProvisioning: waiting for a volume to be created, either by external provisioner \"sts-safe.dev/nobody\" or manually created by system administrator";

#[test]
fn pod_pending_on_unprovisioned_pvc() {
    let f = only_finding("pod-pending-pvc.yaml", "pod-pending");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "pod/redis-2");
    assert_eq!(
        f.problem,
        format!(
            "redis-2 is stuck Pending: PVC \"redis-data-redis-2\" is Pending: StorageClass \"sim-unprovisioned\" \
             (provisioner sts-safe.dev/nobody) has not provisioned a volume; events: {PROVISIONING_EVENT}"
        )
    );
    assert_mentions(&f.fix, &["StorageClass"]);
}

#[test]
fn pod_pending_on_missing_storage_class() {
    let mut inp = load("pod-pending-pvc.yaml");
    inp.storage_classes
        .as_mut()
        .unwrap()
        .retain(|c| c.name_any() != "sim-unprovisioned");
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["pod-pending"]),
        "{found:#?}"
    );
    assert_mentions(
        &found[0].problem,
        &[
            "PVC \"redis-data-redis-2\"",
            "StorageClass \"sim-unprovisioned\" does not exist",
            PROVISIONING_EVENT,
        ],
    );
}

#[test]
fn pod_pending_on_missing_pvc() {
    let mut inp = load("pod-pending-pvc.yaml");
    inp.pvcs.retain(|c| c.name_any() != "redis-data-redis-2");
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["pod-pending"]),
        "{found:#?}"
    );
    assert_eq!(
        found[0].problem,
        "redis-2 is stuck Pending: PVC \"redis-data-redis-2\" does not exist"
    );
}

/// A PVC with `storageClassName: ""` asks for static binding only: there is no
/// StorageClass to be missing, and saying `StorageClass "" does not exist` sends the
/// operator looking for one.
#[test]
fn pod_pending_on_pvc_without_class_does_not_blame_a_nameless_class() {
    let found = diagnose_file("pod-pending-no-class.yaml");
    assert_eq!(
        checks(&found),
        BTreeSet::from(["pod-pending"]),
        "{found:#?}"
    );
    let f = &found[0];
    assert_eq!(f.object, "pod/redis-2");
    assert_mentions(
        &f.problem,
        &[
            "PVC \"redis-data-redis-2\"",
            "FailedBinding: no persistent volumes available for this claim and no storage class is set",
        ],
    );
    assert!(!f.problem.contains("StorageClass \"\""), "{}", f.problem);
}

#[test]
fn pod_pending_ordered_names_the_blocker() {
    // redis-1 is Running but not Ready, redis-2 was not recreated. doctor reports the
    // missing redis-2 naming redis-1; the Running-but-not-Ready redis-1 has no finding
    // of its own (no check covers it outside a rollout).
    let f = only_finding("pod-pending-ordered.yaml", "pod-pending");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "pod/redis-2");
    assert_eq!(
        f.problem,
        "redis-2 is not created because redis-1 is not Running/Ready: it is Running (Unhealthy: Readiness probe failed: LOADING Redis is loading the dataset in memory) (podManagementPolicy OrderedReady)"
    );
    assert_mentions(&f.fix, &["fix redis-1 first"]);
}

#[test]
fn missing_pods_are_not_blocked_under_parallel_management() {
    let mut inp = load("pod-pending-ordered.yaml");
    inp.statefulsets[0].spec.pod_management_policy = Some("Parallel".into());
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);
}

#[test]
fn pending_pod_without_cause_is_starting_until_a_minute_old() {
    let mut inp = load("pod-pending-pvc.yaml");
    // Bind its PVC and drop the scheduling condition: nothing explains the Pending.
    inp.pvcs = load("clean.yaml").pvcs;
    let pod = inp
        .pods
        .iter_mut()
        .find(|p| p.name_any() == "redis-2")
        .unwrap();
    pod.status.as_mut().unwrap().conditions = None;
    let created = |t: &str| {
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            t.parse().unwrap(),
        ))
    };

    pod.metadata.creation_timestamp = created("2026-11-20T11:59:30Z");
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);

    let pod = inp
        .pods
        .iter_mut()
        .find(|p| p.name_any() == "redis-2")
        .unwrap();
    pod.metadata.creation_timestamp = created("2026-11-20T11:58:00Z");
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["pod-pending"]),
        "{found:#?}"
    );
    assert_eq!(
        found[0].problem,
        "redis-2 is stuck Pending: no cause reported for 120s"
    );
}

// ---- claims ----------------------------------------------------------------------

#[test]
fn pvc_mismatch() {
    let f = only_finding("pvc-mismatch.yaml", "pvc-mismatch");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "pod/redis-1");
    assert_mentions(
        &f.problem,
        &[
            "redis-1 mounts PVC \"redis-data-redis-0\"",
            "volume \"redis-data\"",
            "expected \"redis-data-redis-1\"",
        ],
    );
    assert_mentions(&f.fix, &["delete pod redis-1"]);
}

#[test]
fn orphan_pvcs() {
    let f = only_finding("orphan-pvcs.yaml", "orphan-pvcs");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, "statefulset/redis");
    assert_eq!(
        f.problem,
        "1 PVC(s) left by scale-down (10Gi): redis-data-redis-2"
    );
    assert_mentions(&f.fix, &["kubectl sts-safe prune-pvcs redis -n production"]);
}

#[test]
fn orphan_pvcs_sums_their_sizes() {
    let mut inp = load("orphan-pvcs.yaml");
    inp.statefulsets[0].spec.replicas = Some(1);
    inp.pods.retain(|p| p.name_any() == "redis-0");
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["orphan-pvcs"]),
        "{found:#?}"
    );
    assert_eq!(
        found[0].problem,
        "2 PVC(s) left by scale-down (20Gi): redis-data-redis-1, redis-data-redis-2"
    );
}

// ---- security --------------------------------------------------------------------

const CONTAINER: &str = "statefulset/redis/container/redis";

#[test]
fn security_privileged() {
    let f = only_finding("security-privileged.yaml", "security-privileged");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, CONTAINER);
    assert_mentions(&f.problem, &["container \"redis\" is privileged"]);
}

#[test]
fn security_root_user_comes_with_non_root() {
    // A container that runs as root cannot also say runAsNonRoot: true (the kubelet
    // refuses to start it), so security-non-root fires with security-root-user.
    let found = diagnose_file("security-root-user.yaml");
    assert_eq!(
        checks(&found),
        BTreeSet::from(["security-root-user", "security-non-root"]),
        "{found:#?}"
    );
    assert_eq!(found.len(), 2);
    let root = found
        .iter()
        .find(|f| f.check == "security-root-user")
        .unwrap();
    assert_eq!(root.severity, Severity::Error);
    assert_eq!(root.object, CONTAINER);
    assert_eq!(root.problem, "container \"redis\" runs as user 0 (root)");
    let non_root = found
        .iter()
        .find(|f| f.check == "security-non-root")
        .unwrap();
    assert_eq!(non_root.severity, Severity::Warn);
    assert_eq!(non_root.object, CONTAINER);
    // Errors sort first.
    assert_eq!(found[0].check, "security-root-user");
}

#[test]
fn security_root_user_from_the_pod_security_context() {
    // runAsUser 0 inherited from the pod; the container keeps runAsNonRoot: true, so
    // root-user is the only finding.
    let mut inp = load("clean.yaml");
    let spec = inp.statefulsets[0].spec.template.spec.as_mut().unwrap();
    spec.containers[0]
        .security_context
        .as_mut()
        .unwrap()
        .run_as_user = None;
    spec.security_context = Some(k8s_openapi::api::core::v1::PodSecurityContext {
        run_as_user: Some(0),
        ..Default::default()
    });
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["security-root-user"]),
        "{found:#?}"
    );
    assert_eq!(found[0].object, CONTAINER);
}

#[test]
fn security_non_root() {
    let f = only_finding("security-non-root.yaml", "security-non-root");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, CONTAINER);
    assert_mentions(
        &f.problem,
        &["container \"redis\" does not set runAsNonRoot: true"],
    );
}

#[test]
fn security_readonly_rootfs() {
    let f = only_finding("security-readonly-rootfs.yaml", "security-readonly-rootfs");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, CONTAINER);
    assert_eq!(
        f.problem,
        "container \"redis\" has a writable root filesystem"
    );
}

// ---- update strategy -------------------------------------------------------------

#[test]
fn strategy_ondelete() {
    let f = only_finding("strategy-ondelete.yaml", "strategy-ondelete");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, "statefulset/redis");
    assert_mentions(&f.problem, &["OnDelete"]);
    assert_mentions(&f.fix, &["RollingUpdate"]);
}

#[test]
fn partition_too_high() {
    let f = only_finding("partition-too-high.yaml", "partition-too-high");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, "statefulset/redis");
    assert_eq!(
        f.problem,
        "partition 5 is above the replica count (3): no pod will ever be updated"
    );
    assert_mentions(&f.fix, &["kubectl sts-safe canary redis --resume"]);
}

#[test]
fn partition_leftover_with_a_rollout_pending_warns() {
    let f = only_finding("partition-leftover-warn.yaml", "partition-leftover");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, "statefulset/redis");
    assert_mentions(
        &f.problem,
        &[
            "partition 2 holds ordinals below 2 on the old revision",
            "half-way",
        ],
    );
    assert_mentions(
        &f.fix,
        &[
            "kubectl sts-safe canary redis --resume",
            "kubectl sts-safe rollback redis",
        ],
    );
}

#[test]
fn partition_leftover_without_a_rollout_is_info() {
    let f = only_finding("partition-leftover-info.yaml", "partition-leftover");
    assert_eq!(f.severity, Severity::Info);
    assert_eq!(f.object, "statefulset/redis");
    assert_eq!(
        f.problem,
        "partition 1 is set with no rollout pending: the next template change will only reach ordinals 1+"
    );
}

#[test]
fn partition_leftover_is_not_reported_while_the_canary_pod_starts() {
    // redis-2 just created on the update revision, not Ready yet, nothing wrong with it.
    let mut inp = load("partition-leftover-warn.yaml");
    let pod = inp
        .pods
        .iter_mut()
        .find(|p| p.name_any() == "redis-2")
        .unwrap();
    pod.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-11-20T11:59:50Z".parse().unwrap(),
    ));
    let ready = pod.status.as_mut().unwrap().conditions.as_mut().unwrap();
    ready[0].status = "False".into();
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);
}

#[test]
fn rollout_stuck() {
    let f = only_finding("rollout-stuck.yaml", "rollout-stuck");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "pod/redis-2");
    assert_mentions(
        &f.problem,
        &[
            "the rollout is stuck on redis-2",
            "redis: CrashLoopBackOff (back-off 1m20s restarting failed container=redis pod=redis-2_production)",
            "update revision",
            "67250",
        ],
    );
    assert_mentions(&f.fix, &["kubectl sts-safe rollback redis"]);
}

/// A pod in ImagePullBackOff stays in phase Pending. On the update revision of a pending
/// rollout it is a stuck rollout, to be fixed by a rollback; it should be reported once,
/// not also as `pod-pending` (whose fix talks about StorageClasses and scheduling).
#[test]
fn rollout_stuck_on_image_pull_is_reported_once() {
    let found = diagnose_file("rollout-stuck-image-pull.yaml");
    assert_eq!(
        checks(&found),
        BTreeSet::from(["rollout-stuck"]),
        "{found:#?}"
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].object, "pod/redis-2");
    assert_mentions(&found[0].problem, &["redis: ImagePullBackOff"]);
}

// ---- PDB and resources -----------------------------------------------------------

#[test]
fn no_pdb() {
    let f = only_finding("no-pdb.yaml", "no-pdb");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, "statefulset/redis");
    assert_mentions(&f.fix, &["maxUnavailable: 1", "app=redis"]);
}

#[test]
fn no_pdb_is_not_reported_for_a_single_replica() {
    let mut inp = load("no-pdb.yaml");
    inp.statefulsets[0].spec.replicas = Some(1);
    inp.pods.retain(|p| p.name_any() == "redis-0");
    inp.pvcs.retain(|p| {
        !p.name_any().starts_with("redis-data-") || p.name_any() == "redis-data-redis-0"
    });
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);
}

#[test]
fn resources_missing() {
    let f = only_finding("resources-missing.yaml", "resources-missing");
    assert_eq!(f.severity, Severity::Warn);
    assert_eq!(f.object, CONTAINER);
    assert_eq!(
        f.problem,
        "container \"redis\" has no resource requests or limits"
    );
}

#[test]
fn resources_missing_names_only_what_is_missing() {
    let mut inp = load("clean.yaml");
    let c = &mut inp.statefulsets[0]
        .spec
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0];
    c.resources.as_mut().unwrap().limits = None;
    let found = examine(&inp, None, fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["resources-missing"]),
        "{found:#?}"
    );
    assert_eq!(
        found[0].problem,
        "container \"redis\" has no resource limits"
    );
}

// ---- Deployments -----------------------------------------------------------------

#[test]
fn deployment_shared_rwo() {
    let f = only_finding("deployment-shared-rwo.yaml", "deployment-shared-rwo");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "deployment/web");
    assert_mentions(
        &f.problem,
        &["Deployment \"web\" runs 2 replicas on one ReadWriteOnce PVC \"web-uploads\""],
    );
    assert_mentions(&f.fix, &["StatefulSet"]);
}

#[test]
fn deployment_shared_rwo_is_checked_only_without_a_name() {
    let inp = load("deployment-shared-rwo.yaml");
    assert_eq!(examine(&inp, Some("redis"), fixtures::now()), vec![]);
}

#[test]
fn deployment_shared_rwx_is_fine() {
    let mut inp = load("deployment-shared-rwo.yaml");
    let pvc = inp
        .pvcs
        .iter_mut()
        .find(|p| p.name_any() == "web-uploads")
        .unwrap();
    pvc.spec.as_mut().unwrap().access_modes = Some(vec!["ReadWriteMany".into()]);
    assert_eq!(examine(&inp, None, fixtures::now()), vec![]);
}

// ---- only one StatefulSet --------------------------------------------------------

#[test]
fn only_checks_the_named_statefulset() {
    // redis is healthy but the Deployment shares an RWO claim; "other" (scaled to 0)
    // names a Service that does not exist.
    let mut inp = load("deployment-shared-rwo.yaml");
    let mut other = inp.statefulsets[0].clone();
    other.metadata.name = Some("other".into());
    other.spec.service_name = Some("other-headless".into());
    other.spec.replicas = Some(0);
    let app = std::collections::BTreeMap::from([("app".to_string(), "other".to_string())]);
    other.spec.selector.match_labels = Some(app.clone());
    other.spec.template.metadata.as_mut().unwrap().labels = Some(app);
    inp.statefulsets.push(other);

    let found = examine(&inp, Some("other"), fixtures::now());
    assert_eq!(
        checks(&found),
        BTreeSet::from(["service-missing"]),
        "{found:#?}"
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].object, "statefulset/other");
    assert_mentions(&found[0].problem, &["\"other-headless\""]);

    assert_eq!(examine(&inp, Some("redis"), fixtures::now()), vec![]);
    assert_eq!(examine(&inp, Some("nope"), fixtures::now()), vec![]);

    let all = examine(&inp, None, fixtures::now());
    let got: Vec<(&str, &str)> = all.iter().map(|f| (f.check, f.object.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("deployment-shared-rwo", "deployment/web"),
            ("service-missing", "statefulset/other"),
        ]
    );
}

// ---- events and PVC causes -------------------------------------------------------

#[test]
fn events_for_returns_the_newest_in_time_order() {
    let events = load("events.yaml").events;
    assert_eq!(events.len(), 5);
    let provisioning = "Provisioning: External provisioner is provisioning volume for claim \"production/redis-data-redis-2\"";
    let failed = "ProvisioningFailed: failed to provision volume: no capacity";
    assert_eq!(
        events_for(&events, "PersistentVolumeClaim", "redis-data-redis-2", 2),
        vec![failed, PROVISIONING_EVENT]
    );
    assert_eq!(
        events_for(&events, "PersistentVolumeClaim", "redis-data-redis-2", 10),
        vec![provisioning, failed, PROVISIONING_EVENT]
    );
    assert_eq!(
        events_for(&events, "PersistentVolumeClaim", "redis-data-redis-2", 1),
        vec![PROVISIONING_EVENT]
    );
    assert!(events_for(&events, "PersistentVolumeClaim", "redis-data-redis-2", 0).is_empty());
    assert_eq!(
        events_for(&events, "Pod", "redis-data-redis-2", 5),
        vec!["Scheduled: not about the PVC"]
    );
    assert!(events_for(&events, "PersistentVolumeClaim", "redis-data-redis-9", 5).is_empty());
}

fn pending_pvc(inp: &DoctorInputs) -> PersistentVolumeClaim {
    inp.pvcs
        .iter()
        .find(|p| p.name_any() == "redis-data-redis-2")
        .unwrap()
        .clone()
}

#[test]
fn pvc_pending_cause_names_class_provisioner_and_events() {
    let inp = load("pod-pending-pvc.yaml");
    assert_eq!(
        pvc_pending_cause(&pending_pvc(&inp), &inp),
        format!(
            "PVC \"redis-data-redis-2\" is Pending: StorageClass \"sim-unprovisioned\" (provisioner sts-safe.dev/nobody) \
             has not provisioned a volume; events: {PROVISIONING_EVENT}"
        )
    );
}

#[test]
fn pvc_pending_cause_when_the_class_does_not_exist() {
    let mut inp = load("pod-pending-pvc.yaml");
    inp.storage_classes
        .as_mut()
        .unwrap()
        .retain(|c| c.name_any() != "sim-unprovisioned");
    inp.events.clear();
    assert_eq!(
        pvc_pending_cause(&pending_pvc(&inp), &inp),
        "PVC \"redis-data-redis-2\" is Pending: StorageClass \"sim-unprovisioned\" does not exist"
    );
}

#[test]
fn pvc_pending_cause_when_storage_classes_cannot_be_listed() {
    let mut inp = load("pod-pending-pvc.yaml");
    inp.storage_classes = None;
    assert_eq!(
        pvc_pending_cause(&pending_pvc(&inp), &inp),
        format!(
            "PVC \"redis-data-redis-2\" is Pending: StorageClass \"sim-unprovisioned\" has not provisioned a volume; \
             events: {PROVISIONING_EVENT}"
        )
    );
}

#[test]
fn pvc_pending_cause_without_a_class_name() {
    let mut inp = load("pod-pending-pvc.yaml");
    inp.events.clear();
    let mut pvc = pending_pvc(&inp);
    pvc.spec.as_mut().unwrap().storage_class_name = None;
    assert_eq!(
        pvc_pending_cause(&pvc, &inp),
        "PVC \"redis-data-redis-2\" is Pending: no volume was provisioned or bound"
    );
    inp.storage_classes
        .as_mut()
        .unwrap()
        .retain(|c| !is_default_class(c));
    assert_eq!(
        pvc_pending_cause(&pvc, &inp),
        "PVC \"redis-data-redis-2\" is Pending: no storageClassName and no default StorageClass"
    );
    inp.storage_classes = None;
    assert_eq!(
        pvc_pending_cause(&pvc, &inp),
        "PVC \"redis-data-redis-2\" is Pending: no volume was provisioned or bound"
    );
}

#[test]
fn default_class_annotations() {
    let inp = load("pod-pending-pvc.yaml");
    let classes = inp.storage_classes.unwrap();
    let by_name = |n: &str| classes.iter().find(|c| c.name_any() == n).unwrap().clone();
    assert!(is_default_class(&by_name("sim-standard")));
    assert!(!is_default_class(&by_name("sim-unprovisioned")));
    let mut beta = by_name("sim-unprovisioned");
    beta.metadata.annotations = Some(std::collections::BTreeMap::from([(
        "storageclass.beta.kubernetes.io/is-default-class".to_string(),
        "true".to_string(),
    )]));
    assert!(is_default_class(&beta));
}

#[test]
fn partitions_count_from_ordinals_start() {
    // ordinals.start 5: pods 5, 6, 7; partition 1 exposes ordinals 6 and 7.
    let f = crate::fixtures::load("doctor/partition-leftover-warn.yaml");
    let mut inp = inputs(&f);
    let sts = &mut inp.statefulsets[0];
    sts.spec.ordinals = Some(serde_json::from_value(serde_json::json!({"start": 5})).unwrap());
    sts.spec.update_strategy = Some(
        serde_json::from_value(
            serde_json::json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}),
        )
        .unwrap(),
    );
    let update = model::update_revision(sts).unwrap().to_string();
    let current = model::current_revision(sts).unwrap().to_string();
    let template = inp.pods[0].clone();
    inp.pods = (5..8)
        .map(|o| {
            let mut p = template.clone();
            p.metadata.name = Some(format!("redis-{o}"));
            let rev = if o >= 6 { &update } else { &current };
            p.metadata
                .labels
                .as_mut()
                .unwrap()
                .insert("controller-revision-hash".into(), rev.clone());
            p
        })
        .collect();
    inp.pvcs.clear();
    let found = examine(&inp, Some("redis"), crate::fixtures::now());
    let leftover: Vec<_> = found
        .iter()
        .filter(|f| f.check == "partition-leftover")
        .collect();
    assert_eq!(leftover.len(), 1, "{found:#?}");
    assert_eq!(leftover[0].severity, Severity::Warn);
    assert_mentions(&leftover[0].problem, &["below 6", "ordinals 6+"]);
    assert!(
        !found.iter().any(|f| f.check == "partition-too-high"),
        "{found:#?}"
    );
}

#[test]
fn a_live_lock_is_an_operation_in_progress_and_an_expired_one_is_stale() {
    use crate::plan::lease::{taken, Operation, DURATION};
    let mut inp = load("clean.yaml");
    let sts = inp.statefulsets[0].name_any();
    let op = Operation {
        user: "alice".into(),
        host: "laptop".into(),
        pid: 42,
        command: format!("canary {sts} --image x"),
        step: Some((1, 3)),
    };
    let now = fixtures::now();
    inp.leases = vec![taken(None, &sts, &op, DURATION, now)];
    let live: Vec<_> = examine(&inp, None, now)
        .into_iter()
        .filter(|f| f.object.starts_with("lease/"))
        .collect();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(
        (live[0].check, live[0].severity),
        ("operation-in-progress", Severity::Info)
    );
    assert!(
        live[0].problem.contains("alice@laptop (pid 42)"),
        "{}",
        live[0].problem
    );
    let later = now + std::time::Duration::from_secs(60);
    let stale: Vec<_> = examine(&inp, None, later)
        .into_iter()
        .filter(|f| f.object.starts_with("lease/"))
        .collect();
    assert_eq!(
        (stale[0].check, stale[0].severity),
        ("lock-stale", Severity::Warn)
    );
    assert!(stale[0].fix.contains("--resume"), "{}", stale[0].fix);
}

#[test]
fn a_pod_stranded_on_a_lost_node_points_at_recover() {
    let found = diagnose_file("stranded.yaml");
    let f = found
        .iter()
        .find(|f| f.check == "pod-stranded")
        .expect("pod-stranded finding");
    assert_eq!(f.severity, Severity::Error);
    assert_eq!(f.object, "pod/db-1");
    assert!(f.problem.contains("node lost-1"), "{}", f.problem);
    assert!(
        f.fix.contains("kubectl sts-safe recover db -n shop"),
        "{}",
        f.fix
    );
    // The pod on the Ready node is not stranded.
    assert_eq!(
        found.iter().filter(|f| f.check == "pod-stranded").count(),
        1
    );
}
