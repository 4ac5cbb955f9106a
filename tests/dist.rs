//! The release that `make dist` (scripts/dist.sh) built, in `$STS_SAFE_DIST_DIR`: the
//! generated krew manifest passes krew's validation and this project's rules
//! (tests/krew_rules/), has no placeholder, and lists one platform per archive; every
//! archive has the checksum the manifest and its `.sha256` file give, unpacks (with
//! `tar`, as krew would) to exactly the manifest's `files`, deterministically (owner 0,
//! one fixed mtime, no gzip timestamp), with the `bin` executable; every binary is of its
//! platform (ELF machine and static linking, Mach-O CPU type, the macOS dylibs it loads,
//! and on arm64 a valid ad-hoc signature); the linux-amd64 binaries run.
//!
//! Not part of `cargo test` (Cargo.toml: `test = false`): `make dist` runs it with
//! `STS_SAFE_DIST_DIR` (and `STS_SAFE_DIST_PLATFORMS`, the os-arch pairs it built; all
//! four when unset). Without `STS_SAFE_DIST_DIR` every release test fails: it never
//! passes on nothing.

mod binfmt;
mod krew_rules;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use binfmt::{
    parse_elf, parse_macho, sha256_hex, verify_code_signature, CPU_TYPE_ARM64, CPU_TYPE_X86_64,
    EM_AARCH64, EM_X86_64,
};
use krew_rules::{
    archive_name, is_sha256, layout_problems, os_arch, str_at, validate, Expect, BIN, COMPLETE_BIN,
    FILES, PLACEHOLDER_SHA256, PLATFORMS,
};
use serde_yaml::Value;

/// What a macOS binary of this project may load: the system library, iconv (Rust's libc
/// crate links it) with the charset library it re-exports (zig's linker loads that one
/// too), and the two frameworks of scripts/dist.sh's stub SDK. Each is part of every
/// macOS; any other dylib would be an unchecked dependency.
const MACOS_DYLIBS: &[&str] = &[
    "/usr/lib/libSystem.B.dylib",
    "/usr/lib/libiconv.2.dylib",
    "/usr/lib/libcharset.1.dylib",
    "/System/Library/Frameworks/CoreFoundation.framework/Versions/A/CoreFoundation",
    "/System/Library/Frameworks/Security.framework/Versions/A/Security",
];

struct Release {
    dir: PathBuf,
    manifest_path: PathBuf,
    manifest: Value,
    /// The (os, arch) pairs scripts/dist.sh built, in the manifest's order.
    platforms: Vec<(String, String)>,
    version: String,
}

fn release() -> Release {
    let dir = std::env::var_os("STS_SAFE_DIST_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "STS_SAFE_DIST_DIR is not set: this test checks the release that `make dist` \
                 builds (scripts/dist.sh runs it with STS_SAFE_DIST_DIR=target/dist)"
            )
        });
    assert!(
        dir.is_dir(),
        "STS_SAFE_DIST_DIR={} is not a directory",
        dir.display()
    );
    let manifest_path = dir.join("sts-safe.yaml");
    assert!(
        manifest_path.is_file(),
        "{} is missing: `make dist` writes it",
        manifest_path.display()
    );
    let platforms = match std::env::var("STS_SAFE_DIST_PLATFORMS") {
        Ok(list) if !list.trim().is_empty() => list
            .split([' ', ','])
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (os, arch) = p
                    .split_once('-')
                    .unwrap_or_else(|| panic!("STS_SAFE_DIST_PLATFORMS: {p:?} is not os-arch"));
                assert!(
                    PLATFORMS.contains(&(os, arch)),
                    "STS_SAFE_DIST_PLATFORMS: {p} is not a platform of this project"
                );
                (os.to_string(), arch.to_string())
            })
            .collect(),
        _ => PLATFORMS
            .iter()
            .map(|(o, a)| (o.to_string(), a.to_string()))
            .collect(),
    };
    Release {
        manifest: krew_rules::load(&manifest_path),
        manifest_path,
        dir,
        platforms,
        version: format!("v{}", env!("CARGO_PKG_VERSION")),
    }
}

impl Release {
    fn expect(&self) -> Expect {
        let pairs: Vec<(&str, &str)> = self
            .platforms
            .iter()
            .map(|(o, a)| (o.as_str(), a.as_str()))
            .collect();
        Expect::new(&self.manifest_path, &pairs)
    }

    fn archive(&self, os: &str, arch: &str) -> PathBuf {
        self.dir.join(archive_name(&self.version, os, arch))
    }

    /// The manifest's platform entry for os/arch.
    fn entry(&self, os: &str, arch: &str) -> &Value {
        self.manifest["spec"]["platforms"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|pl| os_arch(pl) == Some((os.to_string(), arch.to_string())))
            .unwrap_or_else(|| panic!("the manifest has no platform {os}/{arch}"))
    }

    /// The archive of os/arch unpacked with `tar` into a fresh directory of the test
    /// `tag`.
    fn unpack(&self, os: &str, arch: &str, tag: &str) -> PathBuf {
        let to = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dist-{tag}-{os}-{arch}"));
        let _ = std::fs::remove_dir_all(&to);
        std::fs::create_dir_all(&to).unwrap();
        let archive = self.archive(os, arch);
        let status = Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&to)
            .status()
            .expect("tar runs");
        assert!(status.success(), "tar -xzf {} failed", archive.display());
        to
    }
}

/// Every file under `dir`, as paths relative to it ("a/b" for nested ones); directories
/// are listed with a trailing '/'.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if p.is_dir() {
                out.push(format!("{rel}/"));
                walk(root, &p, out);
            } else {
                out.push(rel);
            }
        }
    }
    let mut out = vec![];
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---- The manifest --------------------------------------------------------------------

#[test]
fn the_generated_manifest_passes_krew_validation_and_promises_the_layout() {
    let r = release();
    let want = r.expect();
    let mut problems = validate(&r.manifest, &want);
    problems.extend(layout_problems(&r.manifest, &want));
    assert!(
        problems.is_empty(),
        "{}:\n  {}",
        r.manifest_path.display(),
        problems.join("\n  ")
    );
}

#[test]
fn the_generated_manifest_has_no_placeholder_and_this_version() {
    let r = release();
    let text = std::fs::read_to_string(&r.manifest_path).unwrap();
    assert!(
        !text.contains(PLACEHOLDER_SHA256),
        "the placeholder checksum is left in {}",
        r.manifest_path.display()
    );
    assert!(
        !text.to_lowercase().contains("placeholder"),
        "{} still speaks of a placeholder",
        r.manifest_path.display()
    );
    assert_eq!(str_at(&r.manifest["spec"], "version"), Some(&*r.version));
    for pl in r.manifest["spec"]["platforms"].as_sequence().unwrap() {
        let sha = str_at(pl, "sha256").unwrap_or_default();
        assert!(
            is_sha256(sha) && sha != PLACEHOLDER_SHA256,
            "sha256 {sha:?}"
        );
        assert!(str_at(pl, "uri").unwrap().contains(&r.version));
    }
}

#[test]
fn the_directory_holds_one_archive_and_checksum_per_manifest_platform_and_nothing_else() {
    let r = release();
    let listed: Vec<(String, String)> = r.manifest["spec"]["platforms"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|pl| os_arch(pl).expect("os/arch labels"))
        .collect();
    assert_eq!(listed, r.platforms, "the manifest's platforms, in order");
    let mut want: Vec<String> = vec!["sts-safe.yaml".into()];
    for (os, arch) in &r.platforms {
        let a = archive_name(&r.version, os, arch);
        want.push(format!("{a}.sha256"));
        want.push(a);
    }
    want.sort();
    assert_eq!(tree(&r.dir), want, "the files in {}", r.dir.display());
}

// ---- The archives --------------------------------------------------------------------

#[test]
fn each_archive_has_the_checksum_of_the_manifest_and_of_its_sha256_file() {
    let r = release();
    for (os, arch) in &r.platforms {
        let archive = r.archive(os, arch);
        let name = archive.file_name().unwrap().to_str().unwrap();
        let have = sha256_hex(&std::fs::read(&archive).unwrap());
        assert_eq!(
            str_at(r.entry(os, arch), "sha256"),
            Some(&*have),
            "{name}: the manifest's sha256"
        );
        let line = std::fs::read_to_string(r.dir.join(format!("{name}.sha256"))).unwrap();
        assert_eq!(
            line,
            format!("{have}  {name}\n"),
            "{name}.sha256 (sha256sum format)"
        );
        // And sha256sum itself agrees with the file (the format is the one it checks).
        let out = Command::new("sha256sum")
            .arg("--check")
            .arg("--strict")
            .arg(format!("{name}.sha256"))
            .current_dir(&r.dir)
            .output()
            .expect("sha256sum runs");
        assert!(
            out.status.success(),
            "sha256sum --check {name}.sha256: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn each_archive_unpacks_to_exactly_the_manifest_files_with_the_bin_executable() {
    let r = release();
    let license = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("LICENSE")).unwrap();
    for (os, arch) in &r.platforms {
        let entry = r.entry(os, arch);
        let from: Vec<String> = entry["files"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|f| str_at(f, "from").unwrap().to_string())
            .collect();
        let mut want = from.clone();
        want.sort();
        let dir = r.unpack(os, arch, "files");
        assert_eq!(tree(&dir), want, "{os}-{arch}: the unpacked archive");
        assert_eq!(from, FILES, "{os}-{arch}: the manifest's files");
        let bin = str_at(entry, "bin").unwrap();
        for f in &from {
            let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
            let executable = f == bin || f == COMPLETE_BIN;
            let want_mode = if executable { 0o755 } else { 0o644 };
            assert_eq!(mode, want_mode, "{os}-{arch}: {f} has mode {mode:o}");
        }
        assert_eq!(
            std::fs::read(dir.join("LICENSE")).unwrap(),
            license,
            "{os}-{arch}: LICENSE is the repository's"
        );
    }
}

/// The tar headers of a .tar.gz (gunzipped by `gzip`): name → (mode, uid, gid, mtime,
/// type flag).
fn tar_headers(archive: &Path) -> BTreeMap<String, (u64, u64, u64, u64, u8)> {
    let out = Command::new("gzip")
        .arg("-dc")
        .arg(archive)
        .output()
        .expect("gzip runs");
    assert!(out.status.success(), "gzip -dc {}", archive.display());
    let tar = out.stdout;
    let octal = |h: &[u8], from: usize, len: usize| -> u64 {
        let s = String::from_utf8_lossy(&h[from..from + len]);
        let s = s.trim_matches(|c: char| c == '\0' || c == ' ');
        u64::from_str_radix(s, 8).unwrap_or_else(|_| panic!("tar field {s:?} is not octal"))
    };
    let mut headers = BTreeMap::new();
    let mut off = 0;
    while off + 512 <= tar.len() && tar[off..off + 512].iter().any(|&b| b != 0) {
        let h = &tar[off..off + 512];
        assert_eq!(
            &h[257..262],
            b"ustar",
            "{}: not a ustar header",
            archive.display()
        );
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size = octal(h, 124, 12) as usize;
        headers.insert(
            name,
            (
                octal(h, 100, 8),
                octal(h, 108, 8),
                octal(h, 116, 8),
                octal(h, 136, 12),
                h[156],
            ),
        );
        off += 512 + size.div_ceil(512) * 512;
    }
    headers
}

#[test]
fn each_archive_is_deterministic() {
    let r = release();
    let mut mtimes = vec![];
    for (os, arch) in &r.platforms {
        let archive = r.archive(os, arch);
        let gz = std::fs::read(&archive).unwrap();
        assert_eq!(&gz[..2], b"\x1f\x8b", "{os}-{arch}: gzip magic");
        assert_eq!(
            &gz[4..8],
            b"\0\0\0\0",
            "{os}-{arch}: gzip header has a timestamp"
        );
        assert_eq!(gz[3] & 0x08, 0, "{os}-{arch}: gzip header has a file name");
        let headers = tar_headers(&archive);
        let mut names: Vec<&str> = headers.keys().map(String::as_str).collect();
        names.sort();
        let mut want = FILES.to_vec();
        want.sort();
        assert_eq!(names, want, "{os}-{arch}: tar entries");
        for (name, (_, uid, gid, mtime, kind)) in &headers {
            assert_eq!((*uid, *gid), (0, 0), "{os}-{arch}: {name} owner");
            assert_eq!(*kind, b'0', "{os}-{arch}: {name} is not a regular file");
            mtimes.push(*mtime);
        }
    }
    mtimes.dedup();
    assert_eq!(mtimes.len(), 1, "one mtime for every file: {mtimes:?}");
}

// ---- The binaries --------------------------------------------------------------------

fn check_linux_binary(path: &Path, machine: u16) -> Result<(), String> {
    let elf = parse_elf(&std::fs::read(path).unwrap())?;
    if elf.machine != machine {
        return Err(format!("ELF machine {}, not {machine}", elf.machine));
    }
    if !(elf.kind == 2 || elf.kind == 3) {
        return Err(format!("ELF type {} is not an executable", elf.kind));
    }
    if elf.has_interp {
        return Err("dynamically linked (has a program interpreter): not portable".into());
    }
    Ok(())
}

fn check_darwin_binary(path: &Path, cputype: u32) -> Result<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let m = parse_macho(&bytes)?;
    if m.cputype != cputype {
        return Err(format!(
            "Mach-O CPU type {:#x}, not {cputype:#x}",
            m.cputype
        ));
    }
    if !m.is_executable || !m.has_entry_point {
        return Err("not an executable with an entry point (MH_EXECUTE, LC_MAIN)".into());
    }
    if m.platform != Some(1) {
        return Err(format!("platform {:?}, not macOS (1)", m.platform));
    }
    let min_os = m.min_os.clone().ok_or("no minimum macOS recorded")?;
    let max_min = if cputype == CPU_TYPE_ARM64 {
        "11.0.0"
    } else {
        "10.14.0"
    };
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|x| x.parse().unwrap()).collect() };
    if parse(&min_os) > parse(max_min) {
        return Err(format!("needs macOS {min_os}, more than {max_min}"));
    }
    for d in &m.dylibs {
        if !MACOS_DYLIBS.contains(&d.path.as_str()) {
            return Err(format!("loads {} (not one of {MACOS_DYLIBS:?})", d.path));
        }
    }
    if !m.dylibs.iter().any(|d| d.path == MACOS_DYLIBS[0]) {
        return Err("does not load libSystem".into());
    }
    let signature = match m.code_signature {
        Some(cs) => {
            let s = verify_code_signature(&bytes, cs)?;
            if !s.adhoc {
                return Err("signed, but not ad-hoc".into());
            }
            format!(
                "ad-hoc signed ({} pages, id {})",
                s.code_pages, s.identifier
            )
        }
        None if cputype == CPU_TYPE_ARM64 => {
            return Err("no code signature: macOS on arm64 kills unsigned binaries".into())
        }
        None => "unsigned".into(),
    };
    Ok(format!(
        "macOS >= {min_os}, sdk {}, {signature}, loads {}",
        m.sdk.as_deref().unwrap_or("?"),
        m.dylibs
            .iter()
            .map(|d| d.path.rsplit('/').next().unwrap())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

#[test]
fn each_binary_is_built_for_its_platform() {
    let r = release();
    let mut problems = vec![];
    for (os, arch) in &r.platforms {
        let dir = r.unpack(os, arch, "format");
        for bin in [BIN, COMPLETE_BIN] {
            let path = dir.join(bin);
            let result = match (os.as_str(), arch.as_str()) {
                ("linux", "amd64") => check_linux_binary(&path, EM_X86_64).map(|_| "static".into()),
                ("linux", "arm64") => {
                    check_linux_binary(&path, EM_AARCH64).map(|_| "static".into())
                }
                ("darwin", "amd64") => check_darwin_binary(&path, CPU_TYPE_X86_64),
                ("darwin", "arm64") => check_darwin_binary(&path, CPU_TYPE_ARM64),
                other => Err(format!("no check for {other:?}")),
            };
            match result {
                Ok(what) => println!("{os}-{arch} {bin}: {what}"),
                Err(e) => problems.push(format!("{os}-{arch} {bin}: {e}")),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_linux_amd64_binary_from_its_archive_runs() {
    let r = release();
    let linux_amd64 = ("linux".to_string(), "amd64".to_string());
    if !r.platforms.contains(&linux_amd64) {
        println!("linux-amd64 was not built (STS_SAFE_DIST_PLATFORMS): nothing to run");
        return;
    }
    let host = (std::env::consts::OS, std::env::consts::ARCH);
    if host != ("linux", "x86_64") {
        panic!("the linux-amd64 binary is run on a linux-amd64 host, not {host:?}");
    }
    let dir = r.unpack("linux", "amd64", "run");
    let out = Command::new(dir.join(BIN))
        .arg("--version")
        .env_clear()
        .output()
        .expect("the unpacked kubectl-sts_safe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kubectl-sts_safe --version: {}{}",
        stdout,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout
            .split_whitespace()
            .any(|w| w == env!("CARGO_PKG_VERSION")),
        "kubectl-sts_safe --version printed {stdout:?}, not version {}",
        env!("CARGO_PKG_VERSION")
    );
    // kubectl runs the completion helper with the words after `kubectl sts-safe`, the
    // last one being completed; no cluster is needed for the subcommands.
    let out = Command::new(dir.join(COMPLETE_BIN))
        .arg("")
        .env_clear()
        .env("KUBECONFIG", "/nonexistent")
        .output()
        .expect("the unpacked kubectl_complete-sts_safe runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout.lines().any(|l| l.starts_with("canary"))
            && stdout.lines().last().is_some_and(|l| l.starts_with(':')),
        "kubectl_complete-sts_safe \"\" printed {stdout:?}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
