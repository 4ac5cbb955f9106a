//! The layout's rules, checked mechanically (also run by `make lint`):
//!
//! - imports only point down the layers (see `LAYERS`): no cycle between top-level modules;
//! - `plan/` is pure: no flags, no client, no terminal, no I/O, no waiting;
//! - a command never imports another command;
//! - no source file over `MAX_LINES` lines (tests, which live in `*_tests.rs` files or
//!   after `#[cfg(test)]`, excepted).
//!
//! Source is read as text; test code is left out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules from the bottom up: a module may use only those before it.
const LAYERS: &[&str] = &[
    "error", "model", "plan", "render", "cli", "context", "ui", "exec", "commands", "complete",
];

const MAX_LINES: usize = 800;

/// What `plan/` must not contain: other layers, the client, the terminal, I/O, time
/// that passes.
const IMPURE: &[&str] = &[
    "crate::cli",
    "crate::context",
    "crate::ui",
    "crate::render",
    "crate::exec",
    "crate::commands",
    "Ctx",
    "async fn",
    ".await",
    "tokio::",
    "std::fs",
    "std::io",
    "std::net",
    "std::process",
    "std::thread",
    "kube::Api",
    "kube::Client",
    "Api<",
    "println!",
    "eprintln!",
    "Instant::now",
    "Timestamp::now",
    "SystemTime",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The file's code without its tests and comments.
fn code(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with("_tests.rs") || name == "fixtures.rs" {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let mut out = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let l = line.trim_start();
        if l.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// `src/plan/canary.rs` → ("plan", Some("canary")); `src/model.rs` → ("model", None).
fn module_of(src: &Path, path: &Path) -> (String, Option<String>) {
    let rel = path.strip_prefix(src).unwrap();
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    (
        parts[0].clone(),
        parts.get(1).cloned().filter(|s| s != "mod"),
    )
}

/// Every `crate::X` a file names (in `use` lines and inline paths).
fn crate_refs(code: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    out
}

fn files() -> Vec<(PathBuf, String, Option<String>, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = vec![];
    sources(&src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter_map(|p| {
            let (top, sub) = module_of(&src, &p);
            // Entry points (the binaries and the crate root) are not layers.
            if top == "main" || top == "lib" || top == "bin" {
                return None;
            }
            let c = code(&p)?;
            Some((p, top, sub, c))
        })
        .collect()
}

#[test]
fn imports_only_point_down() {
    let rank: BTreeMap<&str, usize> = LAYERS.iter().enumerate().map(|(i, m)| (*m, i)).collect();
    let mut wrong = vec![];
    for (path, top, _, code) in files() {
        let Some(&mine) = rank.get(top.as_str()) else {
            wrong.push(format!(
                "{}: top-level module `{top}` has no place in LAYERS",
                path.display()
            ));
            continue;
        };
        for used in crate_refs(&code) {
            match rank.get(used.as_str()) {
                Some(&r) if r < mine || used == top => {}
                Some(_) => wrong.push(format!(
                    "{}: `{top}` uses `crate::{used}`, a layer above it",
                    path.display()
                )),
                None => wrong.push(format!(
                    "{}: uses `crate::{used}`, which has no place in LAYERS",
                    path.display()
                )),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn plan_is_pure() {
    let mut wrong = vec![];
    for (path, top, _, code) in files() {
        if top != "plan" {
            continue;
        }
        for token in IMPURE {
            if code.contains(token) {
                wrong.push(format!("{}: contains `{token}`", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn commands_never_import_each_other() {
    let all = files();
    let commands: Vec<String> = all
        .iter()
        .filter(|(_, top, _, _)| top == "commands")
        .filter_map(|(_, _, sub, _)| sub.clone())
        .collect();
    assert!(commands.len() >= 6, "{commands:?}");
    let mut wrong = vec![];
    for (path, top, sub, code) in &all {
        let Some(me) = sub.as_ref().filter(|_| top == "commands") else {
            continue;
        };
        for other in commands.iter().filter(|c| *c != me) {
            for form in [format!("commands::{other}"), format!("super::{other}")] {
                if code.contains(&form) {
                    wrong.push(format!("{}: uses `{form}`", path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_source_file_is_too_long() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = vec![];
    sources(&src, &mut paths);
    let long: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?;
            if name.ends_with("_tests.rs") {
                return None;
            }
            let text = std::fs::read_to_string(p).ok()?;
            let code_lines = text
                .lines()
                .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
                .count();
            (code_lines > MAX_LINES).then(|| format!("{}: {code_lines} lines", p.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_LINES} lines: {}",
        long.join(", ")
    );
}

#[test]
fn the_checks_see_what_they_check() {
    // Guard against a check that passes because it reads nothing.
    let all = files();
    assert!(all
        .iter()
        .any(|(_, t, s, _)| t == "plan" && s.as_deref() == Some("canary")));
    assert!(crate_refs("use crate::plan::x;\nlet a = crate::model::f();").len() == 2);
    let (_, _, _, exec_canary) = all
        .iter()
        .find(|(_, t, s, _)| t == "exec" && s.as_deref() == Some("canary"))
        .unwrap();
    assert!(exec_canary.contains("crate::plan::"));
}

#[test]
fn every_document_kind_is_documented_in_the_readme() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let table = &readme[readme.find("## `-o json` / `-o yaml` structures").unwrap()..];
    let mut kinds = vec![];
    for (path, top, _, code) in files() {
        if top != "plan" {
            assert!(
                !code.contains("API_VERSION") || top == "render",
                "{}: documents are built in plan/",
                path.display()
            );
            continue;
        }
        let mut rest = code.as_str();
        while let Some(i) = rest.find("kind: \"") {
            let after = &rest[i + 7..];
            let kind: String = after.chars().take_while(|c| *c != '"').collect();
            kinds.push((path.clone(), kind));
            rest = after;
        }
    }
    assert!(kinds.len() >= 9, "{kinds:?}");
    let missing: Vec<String> = kinds
        .iter()
        .filter(|(_, k)| !table.contains(&format!("`{k}`")))
        .map(|(p, k)| format!("{k} ({})", p.display()))
        .collect();
    assert!(missing.is_empty(), "not in the README's table: {missing:?}");
}
