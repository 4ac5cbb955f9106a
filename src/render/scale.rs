//! Text of the scale plan and of the finished scale.

use super::{bold, green, red, yellow, Report};
use crate::plan::scale::{ScalePlan, ScaleReport};

impl Report for ScalePlan {
    fn text(&self) -> String {
        let p = self;
        let mut s = format!(
            "Scale plan for statefulset {}/{}: {} → {} replicas ({} step(s): {})\n",
            p.namespace,
            bold(&p.statefulset),
            p.from,
            p.to,
            p.steps.len(),
            p.steps
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" → ")
        );
        let verb = if p.direction == "up" {
            "create"
        } else {
            "remove"
        };
        for pod in &p.pods {
            s.push_str(&format!("  {verb} {}\n", pod.pod));
            for f in &pod.pvcs {
                let size = f.capacity.as_deref().unwrap_or("");
                let line = match f.action.as_str() {
                "reattached" => format!("PVC {} already exists ({size}, {}): reattached with its old data", f.name, f.phase.as_deref().unwrap_or("?")),
                "created" => format!("PVC {} will be created (StorageClass {})", f.name, f.storage_class.as_deref().unwrap_or("default")),
                "kept" => format!("PVC {} is kept ({size}): orphaned until a scale-up reattaches it or `prune-pvcs` deletes it", f.name),
                _ => format!(
                    "PVC {} is {} ({size}); its PV's reclaim policy is {}",
                    f.name,
                    red("DELETED"),
                    match f.reclaim_policy.as_deref() {
                        Some("Delete") => "Delete: the data is destroyed".to_string(),
                        Some("Retain") => "Retain: the PV stays Released and keeps the data".to_string(),
                        Some(o) => o.to_string(),
                        None => "unknown".to_string(),
                    }
                ),
            };
                s.push_str(&format!("      {line}\n"));
            }
        }
        for e in &p.errors {
            s.push_str(&format!("{} {e}\n", red("error:")));
        }
        for w in &p.warnings {
            let tag = if w.starts_with("DATA LOSS") {
                red("warning:")
            } else {
                yellow("warning:")
            };
            s.push_str(&format!("{tag} {w}\n"));
        }
        s
    }
}

impl Report for ScaleReport {
    fn text(&self) -> String {
        let name = &self.plan.statefulset;
        let mut s = format!(
            "{} statefulset \"{name}\" runs {} replicas, all Ready ({:.1}s)\n",
            green("done:"),
            self.replicas,
            self.seconds
        );
        if !self.orphan_pvcs.is_empty() {
            s.push_str(&format!(
                "{} PVC(s) left behind ({}): {}\n  delete them when the data is no longer needed: kubectl sts-safe prune-pvcs {name} -n {}\n",
                self.orphan_pvcs.len(),
                self.orphan_capacity,
                self.orphan_pvcs.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", "),
                self.plan.namespace
            ));
        }
        s
    }
}
