//! Commands the operator gives the canary, run locally through `sh -c` with the pod's
//! environment: `--check-cmd`, `--role-cmd`, `--before-pod` and `--after-pod`.

use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;

use crate::model;

/// The environment every command gets: POD_NAME, POD_ORDINAL, NAMESPACE, POD_FQDN.
pub fn pod_env(sts: &StatefulSet, namespace: &str, ordinal: i32) -> Vec<(&'static str, String)> {
    let name = sts.metadata.name.clone().unwrap_or_default();
    let pod = model::pod_name(&name, ordinal);
    let svc = sts.spec.service_name.clone().unwrap_or_default();
    vec![
        (
            "POD_FQDN",
            format!("{pod}.{svc}.{namespace}.svc.cluster.local"),
        ),
        ("POD_NAME", pod),
        ("POD_ORDINAL", ordinal.to_string()),
        ("NAMESPACE", namespace.to_string()),
    ]
}

/// Runs `cmd` (named by `flag` in messages) and returns its stdout when it exits 0;
/// otherwise why not, with the last line of its stderr (else stdout).
pub async fn run(
    flag: &str,
    cmd: &str,
    env: &[(&str, String)],
    timeout: Duration,
) -> Result<String, String> {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .kill_on_drop(true)
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    match tokio::time::timeout(timeout, c.output()).await {
        Err(_) => Err(format!(
            "{flag} did not finish within {}s",
            timeout.as_secs()
        )),
        Ok(Err(e)) => Err(format!("{flag} could not start: {e}")),
        Ok(Ok(o)) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(Ok(o)) => {
            let out = String::from_utf8_lossy(&o.stderr).trim().to_string();
            let out = if out.is_empty() {
                String::from_utf8_lossy(&o.stdout).trim().to_string()
            } else {
                out
            };
            Err(format!(
                "{flag} exited {}{}",
                o.status
                    .code()
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "by signal".into()),
                if out.is_empty() {
                    String::new()
                } else {
                    format!(": {}", out.lines().last().unwrap_or(""))
                }
            ))
        }
    }
}
