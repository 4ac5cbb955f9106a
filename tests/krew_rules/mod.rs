//! The rules a krew manifest of this plugin must pass, shared by tests/krew.rs (the
//! checked-in template, krew/sts-safe.yaml) and tests/dist.rs (the manifest `make dist`
//! generates next to the release archives).
//!
//! [`validate`] is krew's own index validation (krew `internal/index/validation`:
//! ValidatePlugin, validatePlatform, validateFiles, validateSelector, semver.Parse) plus
//! this project's rules: the version in Cargo.toml, the cargo binary, https URIs, exactly
//! the expected os/arch platforms. [`layout_problems`] is the archive layout both
//! manifests promise: every archive holds [`FILES`] at its root, `bin` is the plugin
//! binary, the URI names the archive of that version and platform, and `caveats` tell
//! how to put the completion helper on PATH (krew links only `bin`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

pub const API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";
pub const KIND: &str = "Plugin";
/// Names Windows refuses as file names; krew's IsSafePluginName rejects them too.
const WINDOWS_FORBIDDEN: &[&str] = &[
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];
/// Every platform this project ships (the template lists all of them).
pub const PLATFORMS: &[(&str, &str)] = &[
    ("linux", "amd64"),
    ("linux", "arm64"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];
/// The plugin binary (the manifest's `bin`).
pub const BIN: &str = "kubectl-sts_safe";
/// kubectl's completion executable for the plugin (kubectl >= 1.26 runs it for
/// `kubectl sts-safe <TAB>`); krew does not link it, the caveats say how.
pub const COMPLETE_BIN: &str = "kubectl_complete-sts_safe";
/// What every archive holds at its root, in the manifest's `files` order.
pub const FILES: &[&str] = &[BIN, COMPLETE_BIN, "LICENSE"];
/// sha256 of the empty string: the template's placeholder checksum.
pub const PLACEHOLDER_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// What the manifest must agree with.
pub struct Expect {
    /// The manifest's file name without `.yaml`.
    pub stem: String,
    /// `v` + the crate version.
    pub version: String,
    /// The cargo binary's file name.
    pub bin: String,
    /// The (os, arch) pairs the manifest must list, each once, and no other.
    pub platforms: Vec<(String, String)>,
}

impl Expect {
    /// For the manifest at `path`, built from this crate, listing `platforms`.
    pub fn new(path: &Path, platforms: &[(&str, &str)]) -> Self {
        let exe = Path::new(env!("CARGO_BIN_EXE_kubectl-sts_safe"));
        let file = exe.file_name().unwrap().to_str().unwrap();
        Expect {
            stem: path.file_stem().unwrap().to_str().unwrap().to_string(),
            version: format!("v{}", env!("CARGO_PKG_VERSION")),
            bin: file
                .strip_suffix(std::env::consts::EXE_SUFFIX)
                .filter(|_| !std::env::consts::EXE_SUFFIX.is_empty())
                .unwrap_or(file)
                .to_string(),
            platforms: platforms
                .iter()
                .map(|(o, a)| (o.to_string(), a.to_string()))
                .collect(),
        }
    }
}

/// The checked-in template.
pub fn template_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("krew/sts-safe.yaml")
}

pub fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} is not readable: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{} is not YAML: {e}", path.display()))
}

/// `kubectl-sts_safe-v0.1.0-linux-amd64.tar.gz`
pub fn archive_name(version: &str, os: &str, arch: &str) -> String {
    format!("{BIN}-{version}-{os}-{arch}.tar.gz")
}

/// The (os, arch) a platform entry's matchLabels pin, if both are strings.
pub fn os_arch(platform: &Value) -> Option<(String, String)> {
    let labels = platform.get("selector")?.get("matchLabels")?;
    let label = |k: &str| labels.get(k)?.as_str().map(str::to_string);
    Some((label("os")?, label("arch")?))
}

// ---- krew's validation ---------------------------------------------------------------

/// krew's `^[\w-]+$` (Go's `\w` is ASCII `[0-9A-Za-z_]`), minus Windows' reserved names.
pub fn is_safe_plugin_name(name: &str) -> bool {
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
pub fn is_v_semver(s: &str) -> bool {
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

pub fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
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
pub fn validate(m: &Value, want: &Expect) -> Vec<String> {
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
            if !want.platforms.contains(&os_arch) {
                p.push(format!(
                    "platform {i}: os={} arch={} is not an expected platform",
                    os_arch.0, os_arch.1
                ));
            }
            seen.push(os_arch);
        }
    }
    for (os, arch) in &want.platforms {
        if !seen.iter().any(|(o, a)| o == os && a == arch) {
            p.push(format!("no platform for os={os} arch={arch}"));
        }
    }
    p
}

// ---- The archive layout --------------------------------------------------------------

/// Every way `m` departs from the archive layout `make dist` builds: per platform, `bin`
/// is [`BIN`], `files` are exactly [`FILES`] each copied to `.`, and the URI ends in
/// `/releases/download/<version>/<archive_name>`; `spec.caveats` tell how to link (`ln -s`)
/// the completion helper from this version's krew store directory.
pub fn layout_problems(m: &Value, want: &Expect) -> Vec<String> {
    let mut p = vec![];
    let platforms = m["spec"]["platforms"]
        .as_sequence()
        .cloned()
        .unwrap_or_default();
    for (i, pl) in platforms.iter().enumerate() {
        if str_at(pl, "bin") != Some(BIN) {
            p.push(format!("platform {i}: bin is not {BIN}"));
        }
        let files: Vec<(Option<&str>, Option<&str>)> = pl["files"]
            .as_sequence()
            .map(|fs| {
                fs.iter()
                    .map(|f| (str_at(f, "from"), str_at(f, "to")))
                    .collect()
            })
            .unwrap_or_default();
        let wanted: Vec<(Option<&str>, Option<&str>)> =
            FILES.iter().map(|f| (Some(*f), Some("."))).collect();
        if files != wanted {
            p.push(format!(
                "platform {i}: files are {files:?}, the archive layout is {FILES:?}, each to ."
            ));
        }
        let Some((os, arch)) = os_arch(pl) else {
            p.push(format!("platform {i}: no os/arch matchLabels"));
            continue;
        };
        let tail = format!(
            "/releases/download/{v}/{}",
            archive_name(&want.version, &os, &arch),
            v = want.version
        );
        match str_at(pl, "uri") {
            Some(u) if u.ends_with(&tail) => {}
            other => p.push(format!(
                "platform {i}: uri {other:?} does not end in {tail}"
            )),
        }
    }
    let store = format!("store/{}/{}/{COMPLETE_BIN}", want.stem, want.version);
    match m["spec"].get("caveats").and_then(Value::as_str) {
        Some(c) if c.contains(&store) && c.contains("ln -s") => {}
        Some(_) => p.push(format!(
            "spec.caveats do not say how to link (ln -s) {store} onto PATH"
        )),
        None => p.push(format!(
            "spec.caveats are missing (krew links only {BIN}; say how to link {COMPLETE_BIN})"
        )),
    }
    p
}
