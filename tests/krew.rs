//! The krew manifest template (krew/sts-safe.yaml) passes every rule of krew's own index
//! validation (krew `internal/index/validation`: ValidatePlugin, validatePlatform,
//! validateFiles, validateSelector, semver.Parse) plus this project's rules: it ships
//! the version in Cargo.toml, the cargo binary, https URIs, and linux/darwin ×
//! amd64/arm64; and it promises the archive layout `make dist` builds (both binaries and
//! LICENSE at the root, caveats for the completion helper). The rules live in
//! tests/krew_rules/, which tests/dist.rs applies to the generated manifest. No cluster
//! needed.

mod krew_rules;

use krew_rules::{
    is_safe_plugin_name, is_v_semver, layout_problems, template_path, validate, Expect, BIN,
    COMPLETE_BIN, FILES, PLATFORMS,
};
use serde_yaml::{Mapping, Value};

fn expect() -> Expect {
    Expect::new(&template_path(), PLATFORMS)
}

fn load() -> Value {
    krew_rules::load(&template_path())
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
fn the_manifest_ships_both_binaries_and_the_license_per_platform() {
    let m = load();
    let want = expect();
    assert_eq!(want.bin, BIN);
    assert_eq!(want.stem, "sts-safe");
    assert_eq!(FILES, [BIN, COMPLETE_BIN, "LICENSE"]);
    let problems = layout_problems(&m, &want);
    assert!(
        problems.is_empty(),
        "krew/sts-safe.yaml:\n  {}",
        problems.join("\n  ")
    );
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

#[test]
fn a_platform_outside_the_expected_set_fails() {
    let mut want = expect();
    want.platforms.retain(|(os, _)| os == "linux");
    let problems = validate(&load(), &want);
    assert_problem(
        &problems,
        "platform 2: os=darwin arch=amd64 is not an expected platform",
    );
    assert_problem(
        &problems,
        "platform 3: os=darwin arch=arm64 is not an expected platform",
    );
}

#[test]
fn broken_layouts_fail_with_the_right_problem() {
    type Edit = Box<dyn FnOnce(&mut Value)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "no completion helper",
            Box::new(|m| {
                platform(m, 0)["files"].as_sequence_mut().unwrap().remove(1);
            }),
            "platform 0: files are",
        ),
        (
            "files in another order",
            Box::new(|m| {
                platform(m, 1)["files"]
                    .as_sequence_mut()
                    .unwrap()
                    .swap(0, 2)
            }),
            "platform 1: files are",
        ),
        (
            "a file into a subdirectory",
            Box::new(|m| platform(m, 2)["files"][0]["to"] = "bin/".into()),
            "platform 2: files are",
        ),
        (
            "the completion helper as bin",
            Box::new(|m| platform(m, 3)["bin"] = COMPLETE_BIN.into()),
            "platform 3: bin is not",
        ),
        (
            "uri of another platform",
            Box::new(|m| {
                let u = platform(m, 0)["uri"]
                    .as_str()
                    .unwrap()
                    .replace("amd64", "arm64");
                platform(m, 0)["uri"] = u.into();
            }),
            "platform 0: uri",
        ),
        (
            "uri of another version",
            Box::new(|m| {
                let v = expect().version;
                let u = platform(m, 1)["uri"]
                    .as_str()
                    .unwrap()
                    .replace(&v, "v9.9.9");
                platform(m, 1)["uri"] = u.into();
            }),
            "platform 1: uri",
        ),
        (
            "no caveats",
            Box::new(|m| {
                m["spec"].as_mapping_mut().unwrap().remove("caveats");
            }),
            "spec.caveats are missing",
        ),
        (
            "caveats without the store path",
            Box::new(|m| m["spec"]["caveats"] = "Link the completion helper.".into()),
            "spec.caveats do not say how to link",
        ),
    ];
    for (what, edit, needle) in cases {
        let mut m = load();
        edit(&mut m);
        let problems = layout_problems(&m, &expect());
        assert!(
            problems.iter().any(|p| p.contains(needle)),
            "{what}: expected a problem containing {needle:?}, got {problems:#?}"
        );
    }
}
