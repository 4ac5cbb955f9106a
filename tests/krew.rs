//! The krew manifest (krew/sts-safe.yaml) passes every rule of krew's own index
//! validation (krew `internal/index/validation`: ValidatePlugin, validatePlatform,
//! validateFiles, validateSelector, semver.Parse) plus this project's rules: it ships
//! the version in Cargo.toml, the cargo binary, https URIs, and linux/darwin ×
//! amd64/arm64. No cluster needed.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";
const KIND: &str = "Plugin";
/// Names Windows refuses as file names; krew's IsSafePluginName rejects them too.
const WINDOWS_FORBIDDEN: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];
const PLATFORMS: &[(&str, &str)] = &[
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

/// What the manifest must agree with.
struct Expect {
    /// The manifest's file name without `.yaml`.
    stem: String,
    /// `v` + the crate version.
    version: String,
    /// The cargo binary's file name.
    bin: String,
}

fn manifest_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("krew/sts-safe.yaml")
}

fn expect() -> Expect {
    let exe = Path::new(env!("CARGO_BIN_EXE_kubectl-sts_safe"));
    let file = exe.file_name().unwrap().to_str().unwrap();
    Expect {
        stem: manifest_path()
            .file_stem()
            .unwrap()
            .to_str()
            .unwrap()
            .to_string(),
        version: format!("v{}", env!("CARGO_PKG_VERSION")),
        bin: file
            .strip_suffix(std::env::consts::EXE_SUFFIX)
            .filter(|_| !std::env::consts::EXE_SUFFIX.is_empty())
            .unwrap_or(file)
            .to_string(),
    }
}

fn load() -> Value {
    let text = std::fs::read_to_string(manifest_path()).expect("krew/sts-safe.yaml is readable");
    serde_yaml::from_str(&text).expect("krew/sts-safe.yaml is YAML")
}

// ---- The validator -------------------------------------------------------------------

/// krew's `^[\w-]+$` (Go's `\w` is ASCII `[0-9A-Za-z_]`), minus Windows' reserved names.
fn is_safe_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !WINDOWS_FORBIDDEN
            .iter()
            .any(|f| f.eq_ignore_ascii_case(name))
}

fn is_numeric_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Strict semver 2.0.0 with the leading `v` krew requires:
/// vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], no leading zeros in numeric parts.
fn is_v_semver(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else {
        return false;
    };
    let (rest, build) = match rest.split_once('+') {
        Some((r, b)) => (r, Some(b)),
        None => (rest, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (rest, None),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() != 3 || !parts.iter().all(|p| is_numeric_identifier(p)) {
        return false;
    }
    if let Some(pre) = pre {
        let ok = pre.split('.').all(|id| {
            is_identifier(id)
                && (!id.bytes().all(|b| b.is_ascii_digit()) || is_numeric_identifier(id))
        });
        if !ok {
            return false;
        }
    }
    if let Some(build) = build {
        if !build.split('.').all(is_identifier) {
            return false;
        }
    }
    true
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn non_empty<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    str_at(v, key).filter(|s| !s.is_empty())
}

/// krew's validateSelector: present, not empty, keys only os/arch, and neither
/// matchLabels nor matchExpressions given but empty. Returns the (os, arch) it pins.
fn validate_selector(
    i: usize,
    sel: Option<&Value>,
    problems: &mut Vec<String>,
) -> Option<(String, String)> {
    let Some(sel) = sel.filter(|s| !s.is_null()) else {
        problems.push(format!("platform {i}: selector is missing"));
        return None;
    };
    let labels = sel.get("matchLabels").filter(|v| !v.is_null());
    let exprs = sel.get("matchExpressions").filter(|v| !v.is_null());
    let labels_map = labels.and_then(Value::as_mapping);
    let exprs_seq = exprs.and_then(Value::as_sequence);
    if labels.is_some() && labels_map.is_none() {
        problems.push(format!(
            "platform {i}: selector.matchLabels is not a mapping"
        ));
    }
    if exprs.is_some() && exprs_seq.is_none() {
        problems.push(format!(
            "platform {i}: selector.matchExpressions is not a list"
        ));
    }
    if labels.is_none() && exprs_seq.is_none_or(|e| e.is_empty()) {
        problems.push(format!("platform {i}: selector is empty"));
    }
    let mut keys: Vec<String> = labels_map
        .into_iter()
        .flat_map(Mapping::keys)
        .map(|k| k.as_str().unwrap_or("<non-string>").to_string())
        .collect();
    keys.extend(
        exprs_seq
            .into_iter()
            .flatten()
            .map(|e| str_at(e, "key").unwrap_or("<missing>").to_string()),
    );
    for k in keys.iter().filter(|k| *k != "os" && *k != "arch") {
        problems.push(format!(
            "platform {i}: selector key \"{k}\" is not supported (only os and arch)"
        ));
    }
    if labels_map.is_some_and(Mapping::is_empty) {
        problems.push(format!(
            "platform {i}: selector.matchLabels is specified but empty"
        ));
    }
    if exprs_seq.is_some_and(Vec::is_empty) {
        problems.push(format!(
            "platform {i}: selector.matchExpressions is specified but empty"
        ));
    }
    let label = |k: &str| labels_map?.get(k)?.as_str().map(str::to_string);
    Some((label("os")?, label("arch")?))
}

/// krew's validateFiles: absent is fine; present means non-empty, each with from and to.
fn validate_files(i: usize, files: Option<&Value>, problems: &mut Vec<String>) {
    let Some(files) = files.filter(|f| !f.is_null()) else {
        return;
    };
    let Some(list) = files.as_sequence() else {
        problems.push(format!("platform {i}: files is not a list"));
        return;
    };
    if list.is_empty() {
        problems.push(format!(
            "platform {i}: files has to be unspecified or non-empty"
        ));
    }
    for (j, f) in list.iter().enumerate() {
        if non_empty(f, "from").is_none() {
            problems.push(format!("platform {i}: files[{j}].from has to be set"));
        }
        if non_empty(f, "to").is_none() {
            problems.push(format!("platform {i}: files[{j}].to has to be set"));
        }
    }
}

/// Every problem krew's index validation (and this project) finds in `m`; empty when valid.
fn validate(m: &Value, want: &Expect) -> Vec<String> {
    let mut p = vec![];
    match str_at(m, "apiVersion") {
        Some(API_VERSION) => {}
        other => p.push(format!(
            "apiVersion is {other:?}, must be \"{API_VERSION}\""
        )),
    }
    match str_at(m, "kind") {
        Some(KIND) => {}
        other => p.push(format!("kind is {other:?}, must be \"{KIND}\"")),
    }
    if !is_safe_plugin_name(&want.stem) {
        p.push(format!(
            "file name \"{}\" is not a safe plugin name (^[\\w-]+$, no Windows reserved name)",
            want.stem
        ));
    }
    let name = m.get("metadata").and_then(|md| str_at(md, "name"));
    match name {
        None => p.push("metadata.name is missing".into()),
        Some(n) => {
            if !is_safe_plugin_name(n) {
                p.push(format!(
                    "metadata.name \"{n}\" is not a safe plugin name (^[\\w-]+$, no Windows reserved name)"
                ));
            }
            if n != want.stem {
                p.push(format!(
                    "metadata.name \"{n}\" does not equal the file name \"{}\"",
                    want.stem
                ));
            }
        }
    }
    let Some(spec) = m.get("spec").filter(|s| s.is_mapping()) else {
        p.push("spec is missing".into());
        return p;
    };
    match str_at(spec, "shortDescription") {
        None | Some("") => p.push("spec.shortDescription is empty".into()),
        Some(s) if s.contains(['\r', '\n']) => {
            p.push("spec.shortDescription has a line break".into())
        }
        Some(_) => {}
    }
    match str_at(spec, "version") {
        None | Some("") => p.push("spec.version is empty".into()),
        Some(v) => {
            if !is_v_semver(v) {
                p.push(format!(
                    "spec.version \"{v}\" is not semver with a leading v (vMAJOR.MINOR.PATCH)"
                ));
            }
            if v != want.version {
                p.push(format!(
                    "spec.version \"{v}\" does not equal Cargo.toml's \"{}\"",
                    want.version
                ));
            }
        }
    }
    match non_empty(spec, "homepage") {
        Some(h) if h.starts_with("https://") => {}
        other => p.push(format!("spec.homepage {other:?} is not an https URL")),
    }
    let platforms = spec
        .get("platforms")
        .and_then(Value::as_sequence)
        .cloned()
        .unwrap_or_default();
    if platforms.is_empty() {
        p.push("spec.platforms is empty: at least one platform is required".into());
    }
    let mut seen: Vec<(String, String)> = vec![];
    for (i, pl) in platforms.iter().enumerate() {
        match non_empty(pl, "uri") {
            None => p.push(format!("platform {i}: uri has to be set")),
            Some(u) if !u.starts_with("https://") => {
                p.push(format!("platform {i}: uri \"{u}\" is not https"))
            }
            Some(_) => {}
        }
        match non_empty(pl, "sha256") {
            None => p.push(format!("platform {i}: sha256 has to be set")),
            Some(s) if !is_sha256(s) => p.push(format!(
                "platform {i}: sha256 \"{s}\" does not match ^[a-f0-9]{{64}}$"
            )),
            Some(_) => {}
        }
        match non_empty(pl, "bin") {
            None => p.push(format!("platform {i}: bin has to be set")),
            Some(b) if b != want.bin => p.push(format!(
                "platform {i}: bin \"{b}\" is not the cargo binary \"{}\"",
                want.bin
            )),
            Some(_) => {}
        }
        validate_files(i, pl.get("files"), &mut p);
        if let Some(os_arch) = validate_selector(i, pl.get("selector"), &mut p) {
            if seen.contains(&os_arch) {
                p.push(format!(
                    "platform {i}: {}/{} is listed twice",
                    os_arch.0, os_arch.1
                ));
            }
            seen.push(os_arch);
        }
    }
    for (os, arch) in PLATFORMS {
        if !seen.iter().any(|(o, a)| o == os && a == arch) {
            p.push(format!("no platform for os={os} arch={arch}"));
        }
    }
    p
}

// ---- Tests ---------------------------------------------------------------------------

#[test]
fn the_manifest_passes_krew_validation() {
    let problems = validate(&load(), &expect());
    assert!(
        problems.is_empty(),
        "krew/sts-safe.yaml:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_manifest_ships_the_binary_and_the_license_per_platform() {
    let m = load();
    let want = expect();
    assert_eq!(want.bin, "kubectl-sts_safe");
    assert_eq!(want.stem, "sts-safe");
    for pl in m["spec"]["platforms"].as_sequence().unwrap() {
        let files: Vec<(&str, &str)> = pl["files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| (f["from"].as_str().unwrap(), f["to"].as_str().unwrap()))
            .collect();
        assert_eq!(files, [("kubectl-sts_safe", "."), ("LICENSE", ".")]);
        let (os, arch) = (
            pl["selector"]["matchLabels"]["os"].as_str().unwrap(),
            pl["selector"]["matchLabels"]["arch"].as_str().unwrap(),
        );
        let uri = pl["uri"].as_str().unwrap();
        assert!(
            uri.ends_with(&format!(
                "/releases/download/{v}/kubectl-sts_safe-{v}-{os}-{arch}.tar.gz",
                v = want.version
            )),
            "{uri}"
        );
    }
}

#[test]
fn semver_check_is_strict() {
    for good in [
        "v0.1.0",
        "v1.2.3",
        "v10.20.30",
        "v0.0.0",
        "v1.2.3-rc.1",
        "v1.2.3-alpha.0.x-y",
        "v1.2.3+build.001",
        "v1.2.3-beta+exp.sha.5114f85",
    ] {
        assert!(is_v_semver(good), "{good} is valid");
    }
    for bad in [
        "0.1.0",
        "V0.1.0",
        "vv0.1.0",
        "v0.1",
        "v0.1.0.1",
        "v01.1.0",
        "v0.01.0",
        "v0.1.00",
        "v0.1.0-",
        "v0.1.0-01",
        "v0.1.0-a..b",
        "v0.1.0-ä",
        "v0.1.0+",
        "v0.1.0+a..b",
        "v0.x.0",
        "v-1.0.0",
        "v",
        "",
    ] {
        assert!(!is_v_semver(bad), "{bad:?} is invalid");
    }
}

#[test]
fn plugin_names_follow_krew() {
    for good in ["sts-safe", "a", "A_b-9"] {
        assert!(is_safe_plugin_name(good), "{good}");
    }
    for bad in ["", "sts.safe", "sts safe", "sts/safe", "stś", "con", "LPT1"] {
        assert!(!is_safe_plugin_name(bad), "{bad:?}");
    }
}

/// Applies `edit` to a copy of the real manifest and returns the problems found.
fn broken(edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut m = load();
    edit(&mut m);
    validate(&m, &expect())
}

fn platform(m: &mut Value, i: usize) -> &mut Value {
    &mut m["spec"]["platforms"][i]
}

#[track_caller]
fn assert_problem(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

#[test]
fn broken_manifests_fail_with_the_right_problem() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "old apiVersion",
            Box::new(|m| m["apiVersion"] = "krew.googlecontainertools.github.com/v1alpha1".into()),
            "apiVersion",
        ),
        (
            "wrong kind",
            Box::new(|m| m["kind"] = "Plugins".into()),
            "kind",
        ),
        (
            "name with a dot",
            Box::new(|m| m["metadata"]["name"] = "sts.safe".into()),
            "is not a safe plugin name",
        ),
        (
            "name differs from the file",
            Box::new(|m| m["metadata"]["name"] = "sts-safer".into()),
            "does not equal the file name",
        ),
        (
            "no metadata.name",
            Box::new(|m| m["metadata"] = Value::Mapping(Mapping::new())),
            "metadata.name is missing",
        ),
        (
            "version without v",
            Box::new(|m| m["spec"]["version"] = "0.1.0".into()),
            "is not semver with a leading v",
        ),
        (
            "two-part version",
            Box::new(|m| m["spec"]["version"] = "v0.1".into()),
            "is not semver with a leading v",
        ),
        (
            "leading zero",
            Box::new(|m| m["spec"]["version"] = "v0.01.0".into()),
            "is not semver with a leading v",
        ),
        (
            "version not Cargo.toml's",
            Box::new(|m| m["spec"]["version"] = "v9.9.9".into()),
            "does not equal Cargo.toml's",
        ),
        (
            "empty version",
            Box::new(|m| m["spec"]["version"] = "".into()),
            "spec.version is empty",
        ),
        (
            "empty shortDescription",
            Box::new(|m| m["spec"]["shortDescription"] = "".into()),
            "shortDescription is empty",
        ),
        (
            "two-line shortDescription",
            Box::new(|m| m["spec"]["shortDescription"] = "Safe\nStatefulSets".into()),
            "shortDescription has a line break",
        ),
        (
            "CR in shortDescription",
            Box::new(|m| m["spec"]["shortDescription"] = "Safe\rStatefulSets".into()),
            "shortDescription has a line break",
        ),
        (
            "no platforms",
            Box::new(|m| m["spec"]["platforms"] = Value::Sequence(vec![])),
            "at least one platform",
        ),
        (
            "a missing os/arch combination",
            Box::new(|m| {
                m["spec"]["platforms"].as_sequence_mut().unwrap().pop();
            }),
            "no platform for os=darwin arch=arm64",
        ),
        (
            "a duplicated os/arch combination",
            Box::new(|m| {
                let first = m["spec"]["platforms"][0].clone();
                m["spec"]["platforms"][3] = first;
            }),
            "listed twice",
        ),
        (
            "empty uri",
            Box::new(|m| platform(m, 0)["uri"] = "".into()),
            "platform 0: uri has to be set",
        ),
        (
            "http uri",
            Box::new(|m| {
                let u = platform(m, 1)["uri"]
                    .as_str()
                    .unwrap()
                    .replace("https:", "http:");
                platform(m, 1)["uri"] = u.into();
            }),
            "platform 1: uri \"http://",
        ),
        (
            "no sha256",
            Box::new(|m| {
                platform(m, 2).as_mapping_mut().unwrap().remove("sha256");
            }),
            "platform 2: sha256 has to be set",
        ),
        (
            "upper-case sha256",
            Box::new(|m| {
                let s = platform(m, 2)["sha256"].as_str().unwrap().to_uppercase();
                platform(m, 2)["sha256"] = s.into();
            }),
            "does not match ^[a-f0-9]{64}$",
        ),
        (
            "short sha256",
            Box::new(|m| platform(m, 3)["sha256"] = "abc123".into()),
            "does not match ^[a-f0-9]{64}$",
        ),
        (
            "empty bin",
            Box::new(|m| platform(m, 0)["bin"] = "".into()),
            "platform 0: bin has to be set",
        ),
        (
            "bin with a dash",
            Box::new(|m| platform(m, 0)["bin"] = "kubectl-sts-safe".into()),
            "is not the cargo binary",
        ),
        (
            "file without to",
            Box::new(|m| {
                platform(m, 1)["files"][1]
                    .as_mapping_mut()
                    .unwrap()
                    .remove("to");
            }),
            "platform 1: files[1].to has to be set",
        ),
        (
            "file with empty from",
            Box::new(|m| platform(m, 1)["files"][0]["from"] = "".into()),
            "platform 1: files[0].from has to be set",
        ),
        (
            "empty files list",
            Box::new(|m| platform(m, 1)["files"] = Value::Sequence(vec![])),
            "files has to be unspecified or non-empty",
        ),
        (
            "no selector",
            Box::new(|m| {
                platform(m, 2).as_mapping_mut().unwrap().remove("selector");
            }),
            "platform 2: selector is missing",
        ),
        (
            "empty selector",
            Box::new(|m| platform(m, 2)["selector"] = Value::Mapping(Mapping::new())),
            "platform 2: selector is empty",
        ),
        (
            "empty matchLabels",
            Box::new(|m| {
                platform(m, 2)["selector"]["matchLabels"] = Value::Mapping(Mapping::new())
            }),
            "matchLabels is specified but empty",
        ),
        (
            "unsupported selector label",
            Box::new(|m| platform(m, 3)["selector"]["matchLabels"]["distro"] = "debian".into()),
            "selector key \"distro\" is not supported",
        ),
        (
            "unsupported matchExpressions key",
            Box::new(|m| {
                platform(m, 3)["selector"]["matchExpressions"] =
                    serde_yaml::from_str("[{key: libc, operator: In, values: [musl]}]").unwrap()
            }),
            "selector key \"libc\" is not supported",
        ),
        (
            "empty matchExpressions",
            Box::new(|m| platform(m, 3)["selector"]["matchExpressions"] = Value::Sequence(vec![])),
            "matchExpressions is specified but empty",
        ),
        (
            "plain-http homepage",
            Box::new(|m| {
                m["spec"]["homepage"] = "http://github.com/sts-safe/kubectl-sts-safe".into()
            }),
            "spec.homepage",
        ),
    ];
    for (what, edit, needle) in cases {
        let problems = broken(edit);
        assert!(!problems.is_empty(), "{what}: the validator found nothing");
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{what}: expected a problem containing {needle:?}, got {problems:#?}"
        );
    }
}

#[test]
fn a_manifest_of_another_file_name_fails() {
    let mut want = expect();
    want.stem = "sts_safe".into();
    assert_problem(&validate(&load(), &want), "does not equal the file name");
    want.stem = "NUL".into();
    assert_problem(&validate(&load(), &want), "file name \"NUL\" is not a safe");
}
