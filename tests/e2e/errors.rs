//! Bad input: one clear line, the documented exit code, nothing written.

use crate::support::{kubeconfig, Run, TestNs, PLUGIN};

fn plugin(args: &[&str], kubeconfig: &std::path::Path) -> Run {
    let out = std::process::Command::new(PLUGIN)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    Run::from(out)
}

#[tokio::test]
async fn unknown_statefulset_namespace_and_context() {
    let ns = TestNs::new("errors").await;
    let r = ns.plugin(&["status", "nope"]).await;
    r.expect_code(1).expect_one_error_line(&format!(
        "statefulset \"nope\" not found in namespace \"{}\" (context \"sts-safe-admin\")",
        ns.name
    ));
    let kc = kubeconfig();
    let r = plugin(&["status", "redis", "-n", "no-such-namespace-xyz"], &kc);
    r.expect_code(1).expect_one_error_line(
        "namespace \"no-such-namespace-xyz\" not found (context \"sts-safe-admin\")",
    );
    let r = plugin(&["status", "redis", "--context", "prod"], &kc);
    r.expect_code(1).expect_one_error_line(
        "context \"prod\" does not exist (known contexts: sts-safe-admin, sts-safe-limited)",
    );
    let r = ns.plugin(&["doctor", "nope"]).await;
    r.expect_code(1)
        .expect_one_error_line("statefulset \"nope\" not found");
}
