//! Text of the doctor report: one block per finding, then the counts; with `-A`, the
//! blocks grouped by namespace.

use super::{bold, dim, green, red, yellow, Report};
use crate::plan::doctor::{DoctorReport, Finding, Severity};

fn block(f: &Finding) -> String {
    let sev = match f.severity {
        Severity::Error => red("ERROR").to_string(),
        Severity::Warn => yellow("WARN ").to_string(),
        Severity::Info => dim("INFO ").to_string(),
    };
    format!(
        "{sev} {} [{}]\n      {}\n      fix: {}\n",
        f.object, f.check, f.problem, f.fix
    )
}

fn counts(findings: &[Finding]) -> String {
    let count = |s| findings.iter().filter(|f| f.severity == s).count();
    format!(
        "{} error(s), {} warning(s), {} info",
        count(Severity::Error),
        count(Severity::Warn),
        count(Severity::Info),
    )
}

/// `-A`: the namespaces with findings, each under its name and its StatefulSets.
fn all_namespaces(r: &DoctorReport) -> String {
    let mut namespaces: Vec<&str> = r
        .statefulsets
        .iter()
        .filter_map(|s| s.split_once('/').map(|(ns, _)| ns))
        .collect();
    namespaces.dedup();
    let scope = format!(
        "{} StatefulSet(s) across {} namespace(s)",
        r.statefulsets.len(),
        namespaces.len()
    );
    if r.findings.is_empty() {
        return format!("{} no problems found in {scope}\n", green("✓"));
    }
    let mut out = String::new();
    for ns in namespaces {
        let found: Vec<&Finding> = r.findings.iter().filter(|f| f.namespace == ns).collect();
        if found.is_empty() {
            continue;
        }
        let names: Vec<&str> = r
            .statefulsets
            .iter()
            .filter_map(|s| s.strip_prefix(ns)?.strip_prefix('/'))
            .collect();
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} ({}):\n",
            bold(format!("namespace {ns}")),
            names.join(", ")
        ));
        for f in found {
            out.push_str(&block(f));
        }
    }
    out.push_str(&format!("\n{} in {scope}\n", counts(&r.findings)));
    out
}

impl Report for DoctorReport {
    /// Empty when no StatefulSet was checked: the command says "No resources found" on
    /// stderr, as kubectl does.
    fn text(&self) -> String {
        let (findings, checked) = (&self.findings, &self.statefulsets);
        if checked.is_empty() {
            return String::new();
        }
        if self.namespace.is_none() {
            return all_namespaces(self);
        }
        if findings.is_empty() {
            return format!(
                "{} no problems found in {}\n",
                green("✓"),
                checked.join(", ")
            );
        }
        let mut out: String = findings.iter().map(block).collect();
        out.push_str(&format!(
            "\n{} in {}\n",
            counts(findings),
            checked.join(", ")
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::doctor::tests::diagnose_file;

    #[test]
    fn render_without_findings() {
        let text = console::strip_ansi_codes(
            &DoctorReport::new("db", vec!["redis".into()], vec![]).text(),
        )
        .into_owned();
        assert_eq!(text, "✓ no problems found in redis\n");
    }

    #[test]
    fn render_shows_severity_check_problem_and_fix() {
        let mut found = diagnose_file("security-root-user.yaml");
        found.extend(diagnose_file("partition-leftover-info.yaml"));
        let text = console::strip_ansi_codes(
            &DoctorReport::new("db", vec!["redis".into()], found.clone()).text(),
        )
        .into_owned();
        for f in &found {
            let word = match f.severity {
                Severity::Error => "ERROR",
                Severity::Warn => "WARN ",
                Severity::Info => "INFO ",
            };
            for part in [
                format!("{word} {} [{}]\n", f.object, f.check),
                format!("\n      {}\n", f.problem),
                format!("\n      fix: {}\n", f.fix),
            ] {
                assert!(text.contains(&part), "{part:?} not in {text}");
            }
        }
        assert!(
            text.starts_with("ERROR statefulset/redis/container/redis [security-root-user]\n"),
            "{text}"
        );
        assert!(
            text.ends_with("\n1 error(s), 1 warning(s), 1 info in redis\n"),
            "{text}"
        );
    }

    #[test]
    fn render_without_statefulsets() {
        let text = DoctorReport::new("db", vec![], vec![]).text();
        assert_eq!(text, "");
    }

    #[test]
    fn all_namespaces_group_the_findings_by_namespace() {
        use crate::plan::doctor::all::tests::merged;
        use crate::plan::doctor::all::{examine_all, split_by_namespace};
        let inp = merged(&[
            ("doctor/clean.yaml", "a-clean"),
            ("doctor/security-root-user.yaml", "b-root"),
            ("doctor/no-pdb.yaml", "c-nopdb"),
        ]);
        let report = examine_all(&split_by_namespace(inp), crate::fixtures::now());
        let text = console::strip_ansi_codes(&report.text()).into_owned();
        assert!(!text.contains("a-clean"), "{text}");
        let b = text.find("namespace b-root (redis):\nERROR ").expect(&text);
        let c = text.find("\n\nnamespace c-nopdb (redis):\nWARN  statefulset/redis [no-pdb]\n");
        assert!(c.is_some_and(|c| c > b), "{text}");
        assert!(
            text.ends_with(" in 3 StatefulSet(s) across 3 namespace(s)\n"),
            "{text}"
        );
        let clean = examine_all(
            &split_by_namespace(merged(&[("doctor/clean.yaml", "a-clean")])),
            crate::fixtures::now(),
        );
        assert_eq!(
            console::strip_ansi_codes(&clean.text()),
            "✓ no problems found in 1 StatefulSet(s) across 1 namespace(s)\n"
        );
    }
}
