//! Text of the resize plan and of the finished resize.

use super::{bold, dim, green, table, yellow, Report};
use crate::plan::resize::{ClaimAction, ResizePlan, ResizeReport};

impl Report for ResizePlan {
    fn text(&self) -> String {
        let p = self;
        let mut s = format!(
            "Resize plan for statefulset {}/{}{}\n",
            p.namespace,
            bold(&p.statefulset),
            if p.resuming {
                " (continuing an interrupted resize)"
            } else {
                ""
            }
        );
        for t in &p.templates {
            s.push_str(&format!(
                "  volumeClaimTemplate {}: {} → {}{}\n",
                t.name,
                t.from.as_deref().unwrap_or("(no size)"),
                t.to,
                if t.changed { "" } else { " (already)" }
            ));
        }
        let rows: Vec<Vec<String>> = p
            .claims
            .iter()
            .map(|c| {
                let action = match c.action {
                    ClaimAction::Grow => "grow".to_string(),
                    ClaimAction::Wait => "wait (already requested)".into(),
                    ClaimAction::Done => "none (at size)".into(),
                    ClaimAction::Restart => "restart pod (filesystem pending)".into(),
                    ClaimAction::Skip => "skip".into(),
                };
                vec![
                    c.name.clone(),
                    if c.orphan {
                        "orphan".into()
                    } else {
                        c.pod.clone().unwrap_or_default()
                    },
                    c.storage_class.clone().unwrap_or_else(|| "-".into()),
                    c.from.clone(),
                    c.to.clone(),
                    c.expansion.clone(),
                    match &c.note {
                        Some(n) => format!("{action}: {n}"),
                        None => action,
                    },
                ]
            })
            .collect();
        s.push('\n');
        s.push_str(&table(
            &["PVC", "POD", "CLASS", "NOW", "NEW", "EXPANSION", "ACTION"],
            &rows,
        ));
        s.push('\n');
        s.push_str(&format!("Re-create: {}\n", p.recreate.description));
        if p.claims.iter().any(|c| c.orphan) {
            s.push_str(&format!(
                "Orphan PVCs (kept from a scale-down): {}\n",
                if p.include_orphans {
                    "grown too, so a later scale-up brings them back at the new size"
                } else {
                    "left at their size (--no-include-orphans)"
                }
            ));
        }
        for w in &p.warnings {
            s.push_str(&format!("{} {w}\n", yellow("warning:")));
        }
        s
    }
}

impl Report for ResizeReport {
    fn text(&self) -> String {
        let rows: Vec<Vec<String>> = self
            .claims
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.from.clone(),
                    c.capacity.clone().unwrap_or_else(|| "?".into()),
                    c.expansion.clone(),
                    c.outcome.clone(),
                    if c.pod_restarted { "yes" } else { "no" }.into(),
                ]
            })
            .collect();
        let mut s = table(
            &["PVC", "OLD", "NOW", "EXPANSION", "RESULT", "POD RESTARTED"],
            &rows,
        );
        if let Some(r) = &self.recreate {
            s.push_str(&format!(
                "{} statefulset \"{}\" re-created with the new claim templates (uid {} → {}): update revision {} unchanged, {} pods and {} controllerrevisions adopted, {} pods replaced\n",
                green("verified:"),
                self.statefulset,
                short(&r.old_uid),
                short(&r.new_uid),
                r.update_revision.as_deref().unwrap_or("?"),
                r.pods_adopted,
                r.revisions_adopted,
                r.pods_replaced
            ));
        }
        if !self.restart_needed.is_empty() {
            s.push_str(&format!(
                "{} the filesystems of {} grow when their pods restart (offline expansion); restart them one at a time with:\n  {}\n",
                yellow("restart needed:"),
                self.restart_needed.join(", "),
                self.next.as_deref().unwrap_or_default()
            ));
        }
        s.push_str(&format!(
            "{} statefulset \"{}\" resized {}\n",
            green("done:"),
            self.statefulset,
            dim(format!("({:.1}s)", self.seconds))
        ));
        s
    }
}

fn short(uid: &str) -> &str {
    uid.get(..8).unwrap_or(uid)
}
