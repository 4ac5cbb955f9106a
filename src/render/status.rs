//! Text of the status screen, and of the list (`status` without a name).

use super::Report;
use super::{bold, green, red, table, yellow};
use crate::model::{self, format_age};
use crate::plan::lease::describe;
use crate::plan::status::list::{FindingCounts, RevisionState, StatusLine, StatusList};
use crate::plan::status::StatusReport;

/// Age column: `-` where there is no object.
fn age_text(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".into(), format_age)
}

/// The text screen.
impl Report for StatusReport {
    fn text(&self) -> String {
        let r = self;
        let mut out = String::new();
        let rep = &r.replicas;
        out.push_str(&format!("StatefulSet {}/{}\n", r.namespace, bold(&r.name)));
        out.push_str(&format!(
            "Replicas:   {} desired, {} current, {} ready, {} updated{}\n",
            rep.desired,
            rep.current,
            rep.ready,
            rep.updated,
            rep.available
                .map(|a| format!(", {a} available"))
                .unwrap_or_default()
        ));
        let mut strategy = r.update_strategy.type_.clone();
        if r.update_strategy.type_ == "RollingUpdate" {
            strategy.push_str(&format!(" (partition {}", r.update_strategy.partition));
            if let Some(m) = &r.update_strategy.max_unavailable {
                strategy.push_str(&format!(", maxUnavailable {m}"));
            }
            strategy.push(')');
        }
        out.push_str(&format!(
            "Strategy:   {strategy}, podManagementPolicy {}\n",
            r.pod_management_policy
        ));
        let rev = match (&r.current_revision, &r.update_revision) {
            (Some(c), Some(u)) if c != u => format!("{c} → {} {}", u, yellow("(rollout pending)")),
            (Some(c), _) => c.clone(),
            _ => "-".into(),
        };
        out.push_str(&format!("Revision:   {rev}\n"));
        let gen = match r.observed_generation {
            Some(o) if o >= r.generation => format!("{} (observed)", r.generation),
            Some(o) => format!("{} (controller has seen {o})", r.generation),
            None => format!("{} (not yet observed)", r.generation),
        };
        out.push_str(&format!("Generation: {gen}\n"));
        let mut extras = vec![];
        if r.min_ready_seconds > 0 {
            extras.push(format!("minReadySeconds {}", r.min_ready_seconds));
        }
        if r.ordinal_start != 0 {
            extras.push(format!("ordinals start at {}", r.ordinal_start));
        }
        if let Some(p) = &r.pvc_retention_policy {
            extras.push(format!(
                "PVC retention whenScaled={} whenDeleted={}",
                p.when_scaled, p.when_deleted
            ));
        }
        if !extras.is_empty() {
            out.push_str(&format!("Options:    {}\n", extras.join(", ")));
        }
        if let Some(l) = &r.lock {
            let line = if l.expired {
                yellow(&format!(
                    "stale lock of {} (expired: that run is gone; the next writer takes it over)",
                    describe(l)
                ))
                .to_string()
            } else {
                format!("in progress by {}", describe(l))
            };
            out.push_str(&format!("Operation:  {line}\n"));
        }
        out.push('\n');
        let rows: Vec<Vec<String>> = r
            .ordinals
            .iter()
            .map(|o| {
                let status = match (o.phase.as_str(), o.ready) {
                    ("Running", true) => green("Running/Ready").to_string(),
                    ("Missing", _) => red("Missing").to_string(),
                    (p, false) => yellow(format!("{p}/NotReady")).to_string(),
                    (p, true) => format!("{p}/Ready"),
                };
                let pvcs = o
                    .pvcs
                    .iter()
                    .map(|p| {
                        format!(
                            "{} {}{}",
                            p.name,
                            p.phase,
                            p.capacity
                                .as_deref()
                                .map(|c| format!(" {c}"))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                vec![
                    o.ordinal.to_string(),
                    o.pod.clone(),
                    status,
                    o.revision.clone().unwrap_or_else(|| "-".into()),
                    if o.images.is_empty() {
                        "-".into()
                    } else {
                        o.images.join(",")
                    },
                    o.restarts.to_string(),
                    age_text(o.age_seconds),
                    match (&o.node, &o.stranded) {
                        (Some(n), Some(_)) => format!("{n} (lost)"),
                        (Some(n), None) => n.clone(),
                        (None, _) => "-".into(),
                    },
                    if pvcs.is_empty() { "-".into() } else { pvcs },
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "ORD", "POD", "STATUS", "REVISION", "IMAGES", "RESTARTS", "AGE", "NODE", "PVCS",
            ],
            &rows,
        ));
        for o in r.ordinals.iter().filter(|o| o.stranded.is_some()) {
            out.push_str(&format!(
                "{} {} is {}: `kubectl sts-safe recover {} -n {}` brings it back once the node is confirmed off\n",
                red("stranded:"),
                o.pod,
                o.stranded.as_deref().unwrap_or_default(),
                r.name,
                r.namespace
            ));
        }
        if !r.orphan_pvcs.is_empty() {
            let total = model::format_bytes(model::total_bytes(
                r.orphan_pvcs.iter().filter_map(|o| o.capacity.as_deref()),
            ));
            out.push_str(&format!(
                "\n{} PVC(s) outside the live ordinal range ({total}):\n",
                r.orphan_pvcs.len()
            ));
            for o in &r.orphan_pvcs {
                out.push_str(&format!(
                    "  {}  ordinal {}  {}  {}  age {}{}\n",
                    o.name,
                    o.ordinal,
                    o.phase,
                    o.capacity.as_deref().unwrap_or("-"),
                    age_text(o.age_seconds),
                    o.mounted_by
                        .as_deref()
                        .map(|p| format!("  (mounted by pod {p})"))
                        .unwrap_or_default()
                ));
            }
            out.push_str(&format!(
                "  clean up with: kubectl sts-safe prune-pvcs {} -n {}\n",
                r.name, r.namespace
            ));
        }
        out
    }
}

/// kubectl's words for an empty list (stderr, exit 0).
pub fn no_resources(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("No resources found in {ns} namespace."),
        None => "No resources found".into(),
    }
}

/// The REVISION column: where the rollout stands, in a few words.
pub fn revision_text(l: &StatusLine) -> String {
    let partition = l.update_strategy.partition;
    let updated = format!("{}/{} updated", l.replicas.updated, l.replicas.desired);
    match l.revision_state {
        RevisionState::Converged if l.update_strategy.type_ == "RollingUpdate" && partition > 0 => {
            format!("converged, partition {partition}")
        }
        RevisionState::Converged => "converged".into(),
        RevisionState::RolloutPending => format!("rollout pending, {updated}"),
        RevisionState::Partitioned => format!("partition {partition}, {updated}"),
        RevisionState::OnDeletePending => format!("OnDelete pending, {updated}"),
        RevisionState::NotObserved => "not observed yet".into(),
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// The FINDINGS column: doctor's findings by severity, `0` when there is none.
pub fn findings_text(c: &FindingCounts) -> String {
    let mut parts = vec![];
    if c.errors > 0 {
        parts.push(red(plural(c.errors, "error", "errors")).to_string());
    }
    if c.warnings > 0 {
        parts.push(yellow(plural(c.warnings, "warning", "warnings")).to_string());
    }
    if c.info > 0 {
        parts.push(format!("{} info", c.info));
    }
    if parts.is_empty() {
        "0".into()
    } else {
        parts.join(", ")
    }
}

/// One line per StatefulSet, kubectl style (a NAMESPACE column first with `-A`). An empty
/// list has no text: the command says "No resources found" on stderr, as kubectl does.
impl Report for StatusList {
    fn text(&self) -> String {
        if self.items.is_empty() {
            return String::new();
        }
        let all = self.namespace.is_none();
        let mut header = vec![
            "NAME",
            "READY",
            "REVISION",
            "ORPHAN PVCS",
            "FINDINGS",
            "AGE",
        ];
        if all {
            header.insert(0, "NAMESPACE");
        }
        let rows: Vec<Vec<String>> = self
            .items
            .iter()
            .map(|l| {
                let ready = format!("{}/{}", l.replicas.ready, l.replicas.desired);
                let mut row = vec![
                    l.name.clone(),
                    if l.replicas.ready < l.replicas.desired {
                        yellow(ready).to_string()
                    } else {
                        ready
                    },
                    revision_text(l),
                    match l.orphan_pvcs.len() {
                        0 => "0".into(),
                        n => format!("{n} ({})", l.orphan_capacity),
                    },
                    findings_text(&l.findings),
                    age_text(l.age_seconds),
                ];
                if all {
                    row.insert(0, l.namespace.clone());
                }
                row
            })
            .collect();
        table(&header, &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::plan::doctor::all::split_by_namespace;
    use crate::plan::doctor::all::tests::merged;
    use crate::plan::status::list::build;

    fn text(namespace: Option<&str>, files: &[(&str, &str)]) -> String {
        let inp = merged(files);
        let l = build(&split_by_namespace(inp), namespace, fixtures::now());
        console::strip_ansi_codes(&l.text()).into_owned()
    }

    #[test]
    fn the_list_of_one_namespace_has_no_namespace_column() {
        let t = text(Some("prod"), &[("redis-canary-midway.yaml", "prod")]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 2, "{t}");
        assert!(
            lines[0].starts_with("NAME   READY  REVISION                  ORPHAN PVCS  FINDINGS"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("redis  2/3    partition 2, 1/3 updated  0            "),
            "{t}"
        );
    }

    #[test]
    fn all_namespaces_put_the_namespace_first() {
        let t = text(
            None,
            &[
                ("redis-scaled-down.yaml", "a-scaled"),
                ("doctor/clean.yaml", "c-clean"),
            ],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(
            lines[0].starts_with("NAMESPACE  NAME   READY  REVISION"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("a-scaled   redis  2/2    converged  1 (10Gi)"),
            "{t}"
        );
        assert!(
            lines[2].starts_with("c-clean    redis  3/3    converged  0            0"),
            "{t}"
        );
    }

    #[test]
    fn findings_and_empty_words() {
        let c = FindingCounts {
            errors: 1,
            warnings: 2,
            info: 1,
            checks: vec![],
        };
        let t = console::strip_ansi_codes(&findings_text(&c)).into_owned();
        assert_eq!(t, "1 error, 2 warnings, 1 info");
        assert_eq!(findings_text(&FindingCounts::default()), "0");
        assert_eq!(
            no_resources(Some("db")),
            "No resources found in db namespace."
        );
        assert_eq!(no_resources(None), "No resources found");
    }
}
