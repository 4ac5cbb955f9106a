//! Text of the prune plan, of each PVC's result as it happens, and of the summary.

use super::{green, red, table, yellow, Report};
use crate::model::format_age;
use crate::plan::prune::{Outcome, PlanEntry, PrunePlan, PruneReport, Skipped, Status, Summary};

fn fmt_age(secs: Option<i64>) -> String {
    secs.map_or_else(|| "-".into(), format_age)
}

fn where_text(p: &PrunePlan) -> String {
    match (&p.namespace, &p.statefulset) {
        (None, _) => "in all namespaces".into(),
        (Some(ns), Some(s)) => format!("of StatefulSet {ns}/{s}"),
        (Some(ns), None) => format!("in namespace \"{ns}\""),
    }
}

fn styled_consequence(e: &PlanEntry) -> String {
    match e.reclaim_policy.as_deref() {
        Some("Delete") => red(&e.consequence).to_string(),
        Some("Retain") => yellow(&e.consequence).to_string(),
        _ => e.consequence.clone(),
    }
}

fn entries_table(entries: &[PlanEntry], all_namespaces: bool, gone: bool) -> String {
    let second = if gone { "CLAIM PREFIX" } else { "STATEFULSET" };
    let mut header = vec![
        "PVC",
        second,
        "ORDINAL",
        "CAPACITY",
        "STORAGECLASS",
        "VOLUME",
        "RECLAIM POLICY",
        "AGE",
        "PHASE",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    let dash = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let owner = if gone {
                dash(&e.claim_prefix)
            } else {
                dash(&e.statefulset)
            };
            let mut row = vec![
                e.name.clone(),
                owner,
                e.ordinal.to_string(),
                dash(&e.capacity),
                dash(&e.storage_class),
                dash(&e.volume),
                styled_consequence(e),
                fmt_age(e.age_seconds),
                if e.held {
                    format!("{} (held by an earlier run)", e.phase)
                } else {
                    e.phase.clone()
                },
            ];
            if all_namespaces {
                row.insert(0, e.namespace.clone());
            }
            row
        })
        .collect();
    table(&header, &rows)
}

fn skipped_text(p: &PrunePlan) -> String {
    let all = p.namespace.is_none();
    let qualified = |ns: &str, name: &str| {
        if all {
            format!("{ns}/{name}")
        } else {
            name.to_string()
        }
    };
    let mut out = String::new();
    // One line per StatefulSet scaled to 0.
    let mut zero: Vec<(String, String, usize)> = vec![];
    for s in p.skipped.iter().filter(|s| s.code == "scaled-to-zero") {
        let sts = s.statefulset.clone().unwrap_or_default();
        match zero.iter_mut().find(|z| z.0 == s.namespace && z.1 == sts) {
            Some(z) => z.2 += 1,
            None => zero.push((s.namespace.clone(), sts, 1)),
        }
    }
    for (ns, sts, n) in &zero {
        out.push_str(&format!(
            "StatefulSet {} is scaled to 0: skipped, its {n} PVC(s) are kept (use --include-scaled-to-zero)\n",
            qualified(ns, sts)
        ));
    }
    let others: Vec<&Skipped> = p
        .skipped
        .iter()
        .filter(|s| s.code != "scaled-to-zero")
        .collect();
    if !others.is_empty() {
        out.push_str("Kept:\n");
        for s in others {
            let owner = match &s.statefulset {
                Some(sts) => format!("StatefulSet {sts}, ordinal {}", s.ordinal),
                None => format!("StatefulSet gone, ordinal {}", s.ordinal),
            };
            out.push_str(&format!(
                "  {} ({owner}): {}\n",
                qualified(&s.namespace, &s.name),
                s.reason
            ));
        }
    }
    out
}

/// The plan as text: the table, the totals, the "StatefulSet gone" group, what is kept.
impl Report for PrunePlan {
    fn text(&self) -> String {
        let p = self;
        let all = p.namespace.is_none();
        let mut out = String::new();
        if p.pvcs.is_empty() {
            out.push_str(&format!(
                "No PVC orphaned by scale-down {}.\n",
                where_text(p)
            ));
        } else {
            out.push_str(&format!("PVCs orphaned by scale-down {}:\n", where_text(p)));
            out.push_str(&entries_table(&p.pvcs, all, false));
            out.push_str(&format!(
                "Total: {} PVC(s), {}\n",
                p.total.count, p.total.capacity
            ));
        }
        if !p.gone.is_empty() {
            out.push_str(&format!(
            "\nStatefulSet gone: PVCs of StatefulSets that no longer exist {} (deleted only if this group is confirmed):\n",
            where_text(p).replace("of StatefulSet", "named after")
        ));
            out.push_str(&entries_table(&p.gone, all, true));
            out.push_str(&format!(
                "Total: {} PVC(s), {}\n",
                p.gone_total.count, p.gone_total.capacity
            ));
        }
        let kept = skipped_text(p);
        if !kept.is_empty() {
            out.push('\n');
            out.push_str(&kept);
        }
        out
    }
}

pub fn result_line(o: &Outcome, all_namespaces: bool) -> String {
    let name = if all_namespaces {
        format!("{}/{}", o.namespace, o.name)
    } else {
        o.name.clone()
    };
    let reason = o
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    match o.result {
        Status::Deleted => format!("{} {name}", green("deleted")),
        Status::Held => format!("{} {name}{reason}", red("held")),
        Status::Validated => format!("validated {name} (server dry-run, nothing deleted)"),
        Status::Skipped => format!("{} {name}{reason}", yellow("skipped")),
        Status::Failed => format!("{} {name}{reason}", red("failed")),
        Status::NotAttempted => format!("not deleted {name}{reason}"),
    }
}

pub fn render_summary(s: &Summary) -> String {
    let mut parts = vec![];
    if s.validated > 0 {
        parts.push(format!(
            "{} validated by the server (nothing deleted)",
            s.validated
        ));
    } else {
        parts.push(format!(
            "Deleted {} PVC(s) ({})",
            s.deleted, s.deleted_capacity
        ));
    }
    if s.held > 0 {
        parts.push(format!("{} held after a race (volume kept)", s.held));
    }
    if s.skipped > 0 {
        parts.push(format!("{} skipped", s.skipped));
    }
    if s.not_attempted > 0 {
        parts.push(format!("{} not deleted", s.not_attempted));
    }
    if s.failed > 0 {
        parts.push(format!("{} failed", s.failed));
    }
    format!("{}.\n", parts.join(", "))
}

impl Report for PruneReport {
    /// The per-PVC results were printed as they happened; the text is the summary.
    fn text(&self) -> String {
        render_summary(&self.summary)
    }
}
