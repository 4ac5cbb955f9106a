//! Text of the doctor report: one block per finding, then the counts.

use super::{dim, green, red, yellow, Report};
use crate::plan::doctor::{DoctorReport, Severity};

impl Report for DoctorReport {
    fn text(&self) -> String {
        let (findings, checked) = (&self.findings, &self.statefulsets);
        if checked.is_empty() {
            return format!("no StatefulSets in namespace \"{}\"\n", self.namespace);
        }
        let mut out = String::new();
        if findings.is_empty() {
            out.push_str(&format!(
                "{} no problems found in {}\n",
                green("✓"),
                checked.join(", ")
            ));
            return out;
        }
        for f in findings {
            let sev = match f.severity {
                Severity::Error => red("ERROR").to_string(),
                Severity::Warn => yellow("WARN ").to_string(),
                Severity::Info => dim("INFO ").to_string(),
            };
            out.push_str(&format!(
                "{sev} {} [{}]\n      {}\n      fix: {}\n",
                f.object, f.check, f.problem, f.fix
            ));
        }
        let count = |s| findings.iter().filter(|f| f.severity == s).count();
        out.push_str(&format!(
            "\n{} error(s), {} warning(s), {} info in {}\n",
            count(Severity::Error),
            count(Severity::Warn),
            count(Severity::Info),
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
        assert_eq!(text, "no StatefulSets in namespace \"db\"\n");
    }
}
