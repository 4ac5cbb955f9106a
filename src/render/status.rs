//! Text of the status screen.

use super::Report;
use super::{bold, green, red, table, yellow};
use crate::model::{self, format_age};
use crate::plan::lease::describe;
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
