//! `kubectl sts-safe doctor [STS] [-A]`: list what the checks need (one list per kind,
//! `exec::read::doctor_inputs`), run them (`plan::doctor::examine`, per namespace with
//! `-A`), print the findings.

use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::cli::{DoctorArgs, NAME_WITH_ALL_NAMESPACES};
use crate::context::Ctx;
use crate::error::{exit, Error, Result};
use crate::exec::read::doctor_inputs;
use crate::plan::doctor::{self, all, DoctorReport};
use crate::render::status::no_resources;
use crate::render::{self, Output};

pub async fn run(ctx: &Ctx, args: &DoctorArgs) -> Result<i32> {
    let all = args.all_namespaces;
    if all && args.name.is_some() {
        return Err(Error::usage(NAME_WITH_ALL_NAMESPACES));
    }
    let inputs = doctor_inputs(ctx, all, args.name.as_deref()).await?;
    let now = Timestamp::now();
    let report = if all {
        all::examine_all(&all::split_by_namespace(inputs), now)
    } else {
        if inputs.statefulsets.is_empty() && !ctx.namespace_exists().await {
            return Err(Error::NamespaceNotFound {
                namespace: ctx.namespace.clone(),
                context: ctx.target.context.clone(),
            });
        }
        let findings = doctor::examine(&inputs, args.name.as_deref(), now);
        let checked: Vec<String> = inputs.statefulsets.iter().map(|s| s.name_any()).collect();
        DoctorReport::new(&ctx.namespace, checked, findings)
    };
    if report.statefulsets.is_empty() && ctx.output == Output::Text {
        render::note(no_resources(report.namespace.as_deref()));
    } else {
        render::show(ctx.output, &report)?;
    }
    Ok(if report.has_errors() {
        exit::STOPPED
    } else {
        exit::OK
    })
}
