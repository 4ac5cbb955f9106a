//! Text of the canary and rollback documents.

use super::{bold, green, red, yellow, Report};
use crate::model;
use crate::plan::canary::{CanaryPlan, CanaryReport, Mechanism};
use crate::plan::rollback::{RollbackPlan, RollbackReport};
use crate::plan::template::Change;

pub fn render_changes(changes: &[Change]) -> String {
    let mut s = String::new();
    for c in changes {
        let who = c
            .container
            .as_deref()
            .map(|c| format!("container {c}: "))
            .unwrap_or_default();
        s.push_str(&format!(
            "  {who}{} {} → {}\n",
            c.field,
            red(&c.from),
            green(&c.to)
        ));
    }
    s
}

impl Report for CanaryPlan {
    fn text(&self) -> String {
        let p = self;
        let mut s = format!(
            "Canary plan for statefulset {}/{} ({} replicas){}\n",
            p.namespace,
            bold(&p.statefulset),
            p.replicas,
            if p.resume {
                ", resuming the pending rollout"
            } else {
                ""
            }
        );
        if !p.changes.is_empty() {
            s.push_str("Template change:\n");
            s.push_str(&render_changes(&p.changes));
        }
        if p.mechanism == Mechanism::OnDelete {
            s.push_str(&format!(
                "Mechanism: updateStrategy OnDelete; the pods are deleted one at a time in this order{}, each waiting for its gate before the next; at the end the strategy is set to {} (recorded on the StatefulSet until then, so a re-run restores it)\n",
                p.primary.as_deref().map(|pr| format!(" ({pr}, the primary, last)")).unwrap_or_default(),
                p.restore_strategy.as_deref().unwrap_or("?")
            ));
            if !p.resume {
                s.push_str("Freeze: set the new template with updateStrategy OnDelete (no pod changes yet)\n");
            }
            s.push_str("Steps:\n");
            for st in &p.steps {
                s.push_str(&format!(
                    "  {}. delete {}-{:<8} ({} of {} on the new revision; 1 down at a time)\n",
                    st.number, p.statefulset, st.ordinals[0], st.updated, p.replicas
                ));
            }
        } else if !p.resume {
            s.push_str(&format!(
                "Freeze: set partition {} together with the new template (no pod changes yet)\n",
                p.freeze_partition
            ));
        }
        if p.mechanism == Mechanism::Partition {
            s.push_str("Steps (ordinals updated highest first; each waits for its gate):\n");
        }
        for st in p
            .steps
            .iter()
            .filter(|_| p.mechanism == Mechanism::Partition)
        {
            s.push_str(&format!(
                "  {}. partition → {:<3} update {:<12} ({} of {} on the new revision; at most {} down at once)\n",
                st.number,
                st.partition,
                st.ordinals
                    .iter()
                    .map(|o| format!("{}-{o}", p.statefulset))
                    .collect::<Vec<_>>()
                    .join(","),
                st.updated,
                p.replicas,
                st.max_down
            ));
        }
        let g = &p.gates;
        s.push_str(&format!(
        "Gate per pod: recreated on the new revision, Running, Ready for {}s{}, restarts ≤ {}{}; step timeout {}s\n",
        g.soak_seconds,
        if g.min_ready_seconds > 0 {
            format!(" (minReadySeconds {} + --soak)", g.min_ready_seconds)
        } else {
            String::new()
        },
        g.max_restarts,
        g.check_cmd.as_deref().map(|c| format!(", `{c}` exits 0")).unwrap_or_default(),
        g.step_timeout_seconds
    ));
        for (flag, cmd) in [
            ("--before-pod", &g.before_pod),
            ("--after-pod", &g.after_pod),
        ] {
            if let Some(c) = cmd {
                s.push_str(&format!(
                    "Hook {flag}: `{c}` (a non-zero exit stops the canary)\n"
                ));
            }
        }
        if let Some(m) = &g.metrics {
            s.push_str(&format!(
                "Metric gate (Prometheus {}): every {}s from Ready, passed after {} passing evaluation(s) in a row and the soak\n",
                m.prometheus, m.interval_seconds, m.passes
            ));
            for q in &m.fail_if {
                s.push_str(&format!("  fail at once if it returns a sample: {q}\n"));
            }
            for q in &m.require {
                s.push_str(&format!("  must return a sample:                {q}\n"));
            }
        }
        for w in &p.warnings {
            s.push_str(&format!("{} {w}\n", yellow("warning:")));
        }
        s
    }
}

/// The rollback's result in text: its progress was printed as it happened.
impl Report for RollbackReport {
    fn text(&self) -> String {
        format!(
            "Rolled back statefulset {}/{} to revision {} in {:.1}s.\n",
            self.plan.namespace, self.plan.statefulset, self.plan.restore_revision, self.seconds
        )
    }
}

impl Report for RollbackPlan {
    fn text(&self) -> String {
        let p = self;
        let mut s = format!(
            "Rollback plan for statefulset {}/{}: restore revision {} (from {})\n",
            p.namespace,
            bold(&p.statefulset),
            p.restore_revision,
            p.bad_revision
        );
        if !p.changes.is_empty() {
            s.push_str("Template change:\n");
            s.push_str(&render_changes(&p.changes));
        }
        if p.on_delete {
            s.push_str("Restore the template; updateStrategy stays OnDelete, so the pods on the bad revision are deleted one at a time, highest first, each Ready on the restored revision before the next\n");
            if !p.delete_pods.is_empty() {
                s.push_str(&format!("Pods to delete: {}\n", p.delete_pods.join(", ")));
            }
        } else {
            s.push_str("Set partition 0 with the restored template; the controller replaces pods on the bad revision, highest first\n");
        }
        if p.on_delete {
            // The pods to delete are listed above.
        } else if p.delete_pods.is_empty() {
            s.push_str("No pod is stuck on the bad revision\n");
        } else {
            s.push_str(&format!(
            "Delete stuck pod(s) {} so they are recreated from the restored template (kubernetes issue 67250)\n",
            p.delete_pods.join(", ")
        ));
        }
        s.push_str("Then wait until every pod is Ready on the restored revision\n");
        for w in &p.warnings {
            s.push_str(&format!("{} {w}\n", yellow("warning:")));
        }
        s
    }
}

/// Pod names of a StatefulSet's ordinals, comma-separated.
pub fn pod_names(sts: &str, ordinals: &[i32]) -> String {
    ordinals
        .iter()
        .map(|o| model::pod_name(sts, *o))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run's step timings (the plan and progress were shown while it ran).
impl Report for CanaryReport {
    fn text(&self) -> String {
        if self.steps.is_empty() {
            return String::new();
        }
        let mut s = String::from("Step timings:\n");
        for st in &self.steps {
            let how = if self.plan.mechanism == Mechanism::OnDelete {
                "deleted      ".to_string()
            } else {
                format!("partition {:<3}", st.partition)
            };
            s.push_str(&format!(
                "  {}. {how} {:<24} {:.1}s\n",
                st.number,
                pod_names(&self.plan.statefulset, &st.ordinals),
                st.seconds
            ));
        }
        s
    }
}
