//! What went wrong with a pod, in a few lines: phase, container states, restarts and
//! its latest events.

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::ListParams;
use kube::ResourceExt;

use crate::context::Ctx;
use crate::model;

/// What went wrong with pod `name` (None: it does not exist), for a failed gate.
pub async fn pod_failure(ctx: &Ctx, name: &str, pod: Option<&Pod>) -> Vec<String> {
    let mut lines = vec![];
    match pod {
        None => lines.push(format!("{name}: does not exist (being recreated)")),
        Some(p) => {
            lines.push(format!(
                "{name}: phase {}{}, ready {}, restarts {}, revision {}",
                model::phase(p),
                if model::is_terminating(p) {
                    " (Terminating)"
                } else {
                    ""
                },
                model::is_ready(p),
                model::restarts(p),
                model::revision(p).unwrap_or("-")
            ));
            for c in model::container_states(p) {
                lines.push(format!("  container {c}"));
            }
        }
    }
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={name}"
    ));
    if let Ok(events) = ctx.list::<Event>("events", &lp).await {
        let uid = pod.and_then(|p| p.uid());
        let relevant: Vec<Event> = events
            .into_iter()
            .filter(|e| uid.is_none() || e.involved_object.uid == uid)
            .collect();
        for e in crate::plan::doctor::events_for(&relevant, "Pod", name, 5) {
            lines.push(format!("  event {e}"));
        }
    }
    lines
}
