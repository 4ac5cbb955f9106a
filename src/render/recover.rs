//! Text of the recover plan (evidence first, then the risk in plain words, then the
//! steps) and of the finished recovery.

use super::{bold, dim, green, red, table, yellow, Report};
use crate::model::format_age;
use crate::plan::recover::{RecoverPlan, RecoverReport};

fn age(secs: Option<i64>) -> String {
    secs.map_or_else(|| "never".into(), |s| format!("{} ago", format_age(s)))
}

impl Report for RecoverPlan {
    fn text(&self) -> String {
        let p = self;
        let mut s = format!(
            "Recover plan for statefulset {}/{} — method {} ({})\n",
            p.namespace,
            bold(&p.statefulset),
            bold(p.method.as_str()),
            p.method_reason
        );
        s.push_str("\nEvidence (the node must have been silent for at least ");
        s.push_str(&format!("{}):\n", format_age(p.min_down_seconds as i64)));
        for n in &p.nodes {
            s.push_str(&format!(
                "  node {}: Ready={}{}{}; last heard {}; lease renewed {}; heartbeat {}\n",
                bold(&n.name),
                red(&n.ready),
                n.ready_reason
                    .as_deref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                n.ready_since
                    .as_deref()
                    .map(|t| format!(" since {t}"))
                    .unwrap_or_default(),
                age(n.silent_seconds),
                n.lease_renewed.as_deref().unwrap_or("never"),
                n.last_heartbeat.as_deref().unwrap_or("never"),
            ));
            if !n.taints.is_empty() {
                s.push_str(&format!("    taints: {}\n", n.taints.join(", ")));
            }
        }
        if !p.pods.is_empty() {
            let rows: Vec<Vec<String>> = p
                .pods
                .iter()
                .map(|pod| {
                    vec![
                        pod.name.clone(),
                        pod.node.clone(),
                        pod.state.clone(),
                        pod.volumes
                            .iter()
                            .map(|v| {
                                format!(
                                    "{} ({}{})",
                                    v.claim,
                                    v.volume.as_deref().unwrap_or("unbound"),
                                    if v.attachments.is_empty() {
                                        String::new()
                                    } else {
                                        format!(", attached: {}", v.attachments.join(" "))
                                    }
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("; "),
                    ]
                })
                .collect();
            s.push_str("\nStranded pods:\n");
            s.push_str(&table(&["POD", "NODE", "STATE", "VOLUMES"], &rows));
        }
        if !p.pending.is_empty() {
            s.push_str("\nRecoveries under way (a volume still attached to the lost node):\n");
            for r in &p.pending {
                s.push_str(&format!(
                    "  {}: volume {} attached to {} ({})\n",
                    r.name, r.volume, r.node, r.attachment
                ));
            }
        }
        if !p.node_wide.is_empty() {
            s.push_str(&format!(
                "\n{}\n",
                yellow("The out-of-service taint is node-wide. Every pod on the node:")
            ));
            let rows: Vec<Vec<String>> = p
                .node_wide
                .iter()
                .map(|n| {
                    vec![
                        n.node.clone(),
                        format!("{}/{}", n.namespace, n.name),
                        n.owner.clone(),
                        if n.tolerates {
                            "stays (tolerates the taint)".into()
                        } else if p
                            .pods
                            .iter()
                            .any(|s| s.name == n.name && n.namespace == p.namespace)
                        {
                            "deleted by this run (grace period 0), volumes detached".into()
                        } else {
                            "force-deleted by the control plane, volumes detached".into()
                        },
                    ]
                })
                .collect();
            s.push_str(&table(&["NODE", "POD", "OWNER", "WHAT HAPPENS"], &rows));
        }
        s.push_str(&format!("\n{} {}\n", red("Risk:"), p.risk));
        s.push_str("\nSteps:\n");
        for (i, step) in p.steps.iter().enumerate() {
            s.push_str(&format!("  {}. {step}\n", i + 1));
        }
        for w in &p.warnings {
            s.push_str(&format!("{} {w}\n", yellow("warning:")));
        }
        s
    }
}

impl Report for RecoverReport {
    fn text(&self) -> String {
        let mut s = String::new();
        for p in &self.pods {
            s.push_str(&format!(
                "{} {}: {} → {}, Ready after {:.1}s\n",
                green("recovered"),
                bold(&p.name),
                p.old_node,
                p.new_node,
                p.seconds
            ));
        }
        for va in &self.deleted_attachments {
            s.push_str(&format!(
                "{}\n",
                dim(format!("deleted VolumeAttachment {va} by hand"))
            ));
        }
        for cmd in &self.untaint {
            s.push_str(&format!(
                "{} the out-of-service taint stays until removed: once the node is back, run `{cmd}`\n",
                yellow("note:")
            ));
        }
        s
    }
}
