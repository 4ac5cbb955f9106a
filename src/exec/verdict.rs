//! Records how a writing command ended on its StatefulSet (`plan::verdict`), while the
//! run still holds the lock: a merge patch of one annotation, guarded by the
//! resourceVersion it was computed from (re-read and retried on a conflict, since it
//! touches nothing anyone else writes). A failure is a notice, never the command's error.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::ResourceExt;

use crate::context::Ctx;
use crate::plan::verdict::{annotation_patch, last_operation, ANNOTATION};
use crate::render;

pub async fn record(ctx: &Ctx, sts: &str, command: &str, exit_code: i32) {
    if ctx.may_write().is_err() {
        // The lock is gone: another run may be writing now; leave its StatefulSet alone.
        return;
    }
    let api = ctx.api::<StatefulSet>();
    let holder = ctx.lock_holder();
    for _ in 0..3 {
        let current = match api.get(sts).await {
            Ok(s) => s,
            Err(e) => return notice(sts, &e.to_string()),
        };
        let op = last_operation(
            command,
            exit_code,
            &current,
            holder.clone(),
            Timestamp::now(),
        );
        let patch = annotation_patch(&current.resource_version().unwrap_or_default(), &op);
        match api
            .patch(sts, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => return notice(sts, &e.to_string()),
        }
    }
    notice(sts, "it kept changing");
}

fn notice(sts: &str, why: &str) {
    render::note(format!(
        "could not record the outcome on statefulset \"{sts}\" (annotation {ANNOTATION}): {why}"
    ));
}
