//! `doctor -A` and the `status` list: the objects of every namespace, read with one list
//! per kind, split into one [`DoctorInputs`] per namespace, so that every check keeps
//! looking at one namespace at a time.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::{examine, DoctorInputs, DoctorReport, Finding};

/// One [`DoctorInputs`] per namespace that holds a StatefulSet (the others have nothing
/// to check), by namespace name. StorageClasses are cluster-scoped and go to every
/// namespace; nodes go where a pod of the namespace runs on them.
pub fn split_by_namespace(inp: DoctorInputs) -> BTreeMap<String, DoctorInputs> {
    let mut out: BTreeMap<String, DoctorInputs> = BTreeMap::new();
    for sts in inp.statefulsets {
        let ns = sts.namespace().unwrap_or_default();
        let bucket = out.entry(ns).or_default();
        bucket.storage_classes = inp.storage_classes.clone();
        bucket.statefulsets.push(sts);
    }
    fn spread<K: ResourceExt>(
        out: &mut BTreeMap<String, DoctorInputs>,
        items: Vec<K>,
        field: fn(&mut DoctorInputs) -> &mut Vec<K>,
    ) {
        for item in items {
            if let Some(bucket) = out.get_mut(&item.namespace().unwrap_or_default()) {
                field(bucket).push(item);
            }
        }
    }
    spread(&mut out, inp.pods, |b| &mut b.pods);
    spread(&mut out, inp.pvcs, |b| &mut b.pvcs);
    spread(&mut out, inp.services, |b| &mut b.services);
    spread(&mut out, inp.pdbs, |b| &mut b.pdbs);
    spread(&mut out, inp.events, |b| &mut b.events);
    spread(&mut out, inp.deployments, |b| &mut b.deployments);
    spread(&mut out, inp.leases, |b| &mut b.leases);
    for bucket in out.values_mut() {
        for pod in &bucket.pods {
            let Some(node) = crate::model::node(pod) else {
                continue;
            };
            if let Some(n) = inp.nodes.get(node) {
                bucket.nodes.insert(node.to_string(), n.clone());
            }
        }
    }
    out
}

/// `doctor -A`: every namespace's checks, as `doctor` runs them in one namespace; the
/// findings carry their namespace and come grouped by it (each group in `examine`'s
/// order), the StatefulSets are named `namespace/name`.
pub fn examine_all(by_namespace: &BTreeMap<String, DoctorInputs>, now: Timestamp) -> DoctorReport {
    let mut statefulsets = vec![];
    let mut findings: Vec<Finding> = vec![];
    for (ns, inp) in by_namespace {
        let mut names: Vec<String> = inp.statefulsets.iter().map(|s| s.name_any()).collect();
        names.sort();
        statefulsets.extend(names.into_iter().map(|n| format!("{ns}/{n}")));
        findings.extend(examine(inp, None, now).into_iter().map(|mut f| {
            f.namespace = ns.clone();
            f
        }));
    }
    DoctorReport {
        api_version: crate::plan::API_VERSION,
        kind: "DoctorReport",
        namespace: None,
        statefulsets,
        findings,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures;

    fn moved<K: ResourceExt>(mut items: Vec<K>, ns: &str) -> Vec<K> {
        for i in &mut items {
            i.meta_mut().namespace = Some(ns.to_string());
        }
        items
    }

    /// A fixture (path under tests/fixtures/) with every object moved to namespace `ns`.
    pub(crate) fn fixture_inputs(file: &str, ns: &str) -> DoctorInputs {
        let f = fixtures::load(file);
        DoctorInputs {
            statefulsets: moved(f.all("StatefulSet"), ns),
            pods: moved(f.all("Pod"), ns),
            pvcs: moved(f.all("PersistentVolumeClaim"), ns),
            services: moved(f.all("Service"), ns),
            pdbs: moved(f.all("PodDisruptionBudget"), ns),
            events: moved(f.all("Event"), ns),
            deployments: moved(f.all("Deployment"), ns),
            storage_classes: Some(f.all("StorageClass")),
            leases: moved(f.all("Lease"), ns),
            nodes: BTreeMap::new(),
        }
    }

    /// Two namespaces' worth of objects in one list per kind, as `-A` reads them: the
    /// clean fixture in `clean-ns` and the root-user one in `root-ns`.
    pub(crate) fn two_namespaces() -> DoctorInputs {
        merged(&[
            ("doctor/clean.yaml", "clean-ns"),
            ("doctor/security-root-user.yaml", "root-ns"),
        ])
    }

    /// Fixtures, each in a namespace of its own, in one list per kind (as `-A` reads them).
    pub(crate) fn merged(files: &[(&str, &str)]) -> DoctorInputs {
        let mut all = DoctorInputs {
            storage_classes: Some(vec![]),
            ..DoctorInputs::default()
        };
        for (file, ns) in files {
            let other = fixture_inputs(file, ns);
            if all.storage_classes.as_ref().is_some_and(Vec::is_empty) {
                all.storage_classes = other.storage_classes.clone();
            }
            merge(&mut all, other);
        }
        all
    }

    fn merge(all: &mut DoctorInputs, other: DoctorInputs) {
        all.statefulsets.extend(other.statefulsets);
        all.pods.extend(other.pods);
        all.pvcs.extend(other.pvcs);
        all.services.extend(other.services);
        all.pdbs.extend(other.pdbs);
        all.events.extend(other.events);
        all.deployments.extend(other.deployments);
        all.leases.extend(other.leases);
    }

    #[test]
    fn split_keeps_each_namespace_to_itself() {
        let by_ns = split_by_namespace(two_namespaces());
        assert_eq!(
            by_ns.keys().collect::<Vec<_>>(),
            vec!["clean-ns", "root-ns"]
        );
        for (ns, inp) in &by_ns {
            assert_eq!(inp.statefulsets.len(), 1, "{ns}");
            assert_eq!(inp.pods.len(), 3, "{ns}");
            assert_eq!(inp.pvcs.len(), 4, "{ns}");
            assert_eq!(inp.services.len(), 1, "{ns}");
            assert!(inp
                .pods
                .iter()
                .all(|p| p.namespace().as_deref() == Some(ns.as_str())));
            assert_eq!(inp.storage_classes.as_ref().map(Vec::len), Some(1));
        }
    }

    #[test]
    fn a_namespace_without_statefulsets_is_left_out() {
        let mut all = two_namespaces();
        all.statefulsets
            .retain(|s| s.namespace().as_deref() == Some("clean-ns"));
        let by_ns = split_by_namespace(all);
        assert_eq!(by_ns.keys().collect::<Vec<_>>(), vec!["clean-ns"]);
        assert_eq!(by_ns["clean-ns"].pods.len(), 3);
    }

    #[test]
    fn examine_all_tags_findings_with_their_namespace() {
        let by_ns = split_by_namespace(two_namespaces());
        let report = examine_all(&by_ns, fixtures::now());
        assert_eq!(report.namespace, None);
        assert_eq!(report.statefulsets, vec!["clean-ns/redis", "root-ns/redis"]);
        assert!(!report.findings.is_empty());
        assert!(report.findings.iter().all(|f| f.namespace == "root-ns"));
        assert!(report.has_errors());
        // The same findings as `doctor` in that namespace alone.
        let alone = examine(&by_ns["root-ns"], None, fixtures::now());
        assert_eq!(
            report.findings.iter().map(|f| f.check).collect::<Vec<_>>(),
            alone.iter().map(|f| f.check).collect::<Vec<_>>()
        );
        let json = serde_json::to_value(&report).unwrap();
        assert!(json["namespace"].is_null());
        assert_eq!(json["findings"][0]["namespace"], "root-ns");
        assert_eq!(json["kind"], "DoctorReport");
    }
}
