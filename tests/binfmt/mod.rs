//! What tests/dist.rs needs to check a release binary without running it: SHA-256 (so a
//! checksum is recomputed here, not taken from the tool that wrote it), the ELF and
//! Mach-O headers (the architecture a binary was built for, static linking, the dylibs a
//! macOS binary loads, its minimum macOS) and the ad-hoc code signature that macOS on
//! Apple silicon requires of every arm64 binary (each page's hash in the
//! CodeDirectory).

#![allow(dead_code)]

// ---- SHA-256 (FIPS 180-4) ------------------------------------------------------------

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn compress(h: &mut [u32; 8], block: &[u8]) {
    let mut w = [0u32; 64];
    for (i, word) in block.chunks_exact(4).enumerate() {
        w[i] = u32::from_be_bytes(word.try_into().unwrap());
    }
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = *h;
    for i in 0..64 {
        let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
        let ch = (e & f) ^ (!e & g);
        let t1 = hh
            .wrapping_add(s1)
            .wrapping_add(ch)
            .wrapping_add(K[i])
            .wrapping_add(w[i]);
        let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
        let maj = (a & b) ^ (a & c) ^ (b & c);
        let t2 = s0.wrapping_add(maj);
        hh = g;
        g = f;
        f = e;
        e = d.wrapping_add(t1);
        d = c;
        c = b;
        b = a;
        a = t1.wrapping_add(t2);
    }
    for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
        *x = x.wrapping_add(y);
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h: [u32; 8] = [
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
        0x5be0cd19,
    ];
    let mut blocks = data.chunks_exact(64);
    for block in blocks.by_ref() {
        compress(&mut h, block);
    }
    let mut tail = blocks.remainder().to_vec();
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in tail.chunks_exact(64) {
        compress(&mut h, block);
    }
    let mut out = [0u8; 32];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&sha256(data))
}

// ---- Byte reading --------------------------------------------------------------------

fn bytes_at(b: &[u8], off: usize, len: usize) -> Result<&[u8], String> {
    off.checked_add(len)
        .and_then(|end| b.get(off..end))
        .ok_or_else(|| format!("truncated: {len} bytes at offset {off} past {}", b.len()))
}

fn le16(b: &[u8], off: usize) -> Result<u16, String> {
    Ok(u16::from_le_bytes(bytes_at(b, off, 2)?.try_into().unwrap()))
}

fn le32(b: &[u8], off: usize) -> Result<u32, String> {
    Ok(u32::from_le_bytes(bytes_at(b, off, 4)?.try_into().unwrap()))
}

fn le64(b: &[u8], off: usize) -> Result<u64, String> {
    Ok(u64::from_le_bytes(bytes_at(b, off, 8)?.try_into().unwrap()))
}

fn be32(b: &[u8], off: usize) -> Result<u32, String> {
    Ok(u32::from_be_bytes(bytes_at(b, off, 4)?.try_into().unwrap()))
}

fn be64(b: &[u8], off: usize) -> Result<u64, String> {
    Ok(u64::from_be_bytes(bytes_at(b, off, 8)?.try_into().unwrap()))
}

fn cstr(b: &[u8], off: usize) -> Result<String, String> {
    let rest = b.get(off..).ok_or("string offset out of range")?;
    let end = rest
        .iter()
        .position(|&c| c == 0)
        .ok_or("unterminated string")?;
    Ok(String::from_utf8_lossy(&rest[..end]).into_owned())
}

// ---- ELF -----------------------------------------------------------------------------

pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;

/// What a 64-bit little-endian ELF executable says about itself.
#[derive(Debug)]
pub struct Elf {
    /// e_machine: [`EM_X86_64`], [`EM_AARCH64`], …
    pub machine: u16,
    /// e_type: 2 executable, 3 position-independent executable.
    pub kind: u16,
    /// It names a program interpreter (a dynamic loader): not statically linked.
    pub has_interp: bool,
    /// It has a dynamic section (true for static-pie too: its own relocations).
    pub has_dynamic: bool,
}

pub fn parse_elf(b: &[u8]) -> Result<Elf, String> {
    if bytes_at(b, 0, 4)? != b"\x7fELF" {
        return Err("not an ELF file (no \\x7fELF magic)".into());
    }
    if b[4] != 2 || b[5] != 1 {
        return Err(format!(
            "not a 64-bit little-endian ELF (class {}, data {})",
            b[4], b[5]
        ));
    }
    let phoff = le64(b, 32)? as usize;
    let phentsize = le16(b, 54)? as usize;
    let phnum = le16(b, 56)? as usize;
    let mut types = vec![];
    for i in 0..phnum {
        types.push(le32(b, phoff + i * phentsize)?);
    }
    Ok(Elf {
        machine: le16(b, 18)?,
        kind: le16(b, 16)?,
        has_interp: types.contains(&PT_INTERP),
        has_dynamic: types.contains(&PT_DYNAMIC),
    })
}

// ---- Mach-O --------------------------------------------------------------------------

pub const MH_MAGIC_64: u32 = 0xfeed_facf;
pub const CPU_TYPE_X86_64: u32 = 0x0100_0007;
pub const CPU_TYPE_ARM64: u32 = 0x0100_000c;
const MH_EXECUTE: u32 = 2;
const LC_LOAD_DYLIB: u32 = 0xc;
const LC_LOAD_WEAK_DYLIB: u32 = 0x8000_0018;
const LC_REEXPORT_DYLIB: u32 = 0x8000_001f;
const LC_LOAD_UPWARD_DYLIB: u32 = 0x8000_0023;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const LC_VERSION_MIN_MACOSX: u32 = 0x24;
const LC_BUILD_VERSION: u32 = 0x32;
const LC_MAIN: u32 = 0x8000_0028;
const PLATFORM_MACOS: u32 = 1;

/// A dylib a Mach-O binary loads, with the versions the linker recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Dylib {
    pub path: String,
    /// `a.b.c` from the packed xxxx.yy.zz.
    pub current: String,
    pub compatibility: String,
}

/// What a 64-bit little-endian Mach-O executable says about itself.
#[derive(Debug)]
pub struct MachO {
    pub cputype: u32,
    pub is_executable: bool,
    pub has_entry_point: bool,
    pub dylibs: Vec<Dylib>,
    /// LC_BUILD_VERSION's platform (1 = macOS), when present.
    pub platform: Option<u32>,
    /// The minimum macOS, from LC_BUILD_VERSION or LC_VERSION_MIN_MACOSX.
    pub min_os: Option<String>,
    /// The SDK version the linker recorded.
    pub sdk: Option<String>,
    /// LC_CODE_SIGNATURE: (dataoff, datasize).
    pub code_signature: Option<(usize, usize)>,
}

fn packed_version(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

pub fn parse_macho(b: &[u8]) -> Result<MachO, String> {
    let magic = le32(b, 0)?;
    if magic != MH_MAGIC_64 {
        return Err(format!(
            "not a 64-bit little-endian Mach-O (magic {magic:#010x})"
        ));
    }
    let ncmds = le32(b, 16)? as usize;
    let mut m = MachO {
        cputype: le32(b, 4)?,
        is_executable: le32(b, 12)? == MH_EXECUTE,
        has_entry_point: false,
        dylibs: vec![],
        platform: None,
        min_os: None,
        sdk: None,
        code_signature: None,
    };
    let mut off = 32;
    for _ in 0..ncmds {
        let cmd = le32(b, off)?;
        let size = le32(b, off + 4)? as usize;
        if size < 8 {
            return Err(format!("load command {cmd:#x} of size {size}"));
        }
        let lc = bytes_at(b, off, size)?;
        match cmd {
            LC_LOAD_DYLIB | LC_LOAD_WEAK_DYLIB | LC_REEXPORT_DYLIB | LC_LOAD_UPWARD_DYLIB => {
                m.dylibs.push(Dylib {
                    path: cstr(lc, le32(lc, 8)? as usize)?,
                    current: packed_version(le32(lc, 16)?),
                    compatibility: packed_version(le32(lc, 20)?),
                })
            }
            LC_BUILD_VERSION => {
                m.platform = Some(le32(lc, 8)?);
                m.min_os = Some(packed_version(le32(lc, 12)?));
                m.sdk = Some(packed_version(le32(lc, 16)?));
            }
            LC_VERSION_MIN_MACOSX => {
                m.platform = Some(PLATFORM_MACOS);
                m.min_os = Some(packed_version(le32(lc, 8)?));
                m.sdk = Some(packed_version(le32(lc, 12)?));
            }
            LC_CODE_SIGNATURE => {
                m.code_signature = Some((le32(lc, 8)? as usize, le32(lc, 12)? as usize))
            }
            LC_MAIN => m.has_entry_point = true,
            _ => {}
        }
        off += size;
    }
    Ok(m)
}

// ---- Code signature ------------------------------------------------------------------

const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CSSLOT_CODEDIRECTORY: u32 = 0;
const CS_HASHTYPE_SHA256: u8 = 2;
const CS_ADHOC: u32 = 0x2;

/// What a verified embedded signature is.
#[derive(Debug)]
pub struct Signature {
    pub identifier: String,
    pub adhoc: bool,
    pub code_pages: usize,
}

/// Checks the embedded code signature the way the kernel does when it pages the
/// binary in: the CodeDirectory's hash of every page of the file up to codeLimit (which
/// must be where the signature starts), and the hash of each special slot (a blob of
/// the signature, such as the requirements, or zeros when the blob is absent).
pub fn verify_code_signature(
    b: &[u8],
    (dataoff, datasize): (usize, usize),
) -> Result<Signature, String> {
    let sig = bytes_at(b, dataoff, datasize)?;
    if be32(sig, 0)? != CSMAGIC_EMBEDDED_SIGNATURE {
        return Err("LC_CODE_SIGNATURE does not point at an embedded signature".into());
    }
    let count = be32(sig, 8)? as usize;
    let mut blobs = vec![];
    for i in 0..count {
        let kind = be32(sig, 12 + i * 8)?;
        let off = be32(sig, 16 + i * 8)? as usize;
        let len = be32(sig, off + 4)? as usize;
        blobs.push((kind, bytes_at(sig, off, len)?));
    }
    let cd = blobs
        .iter()
        .find(|(k, _)| *k == CSSLOT_CODEDIRECTORY)
        .map(|(_, blob)| *blob)
        .ok_or("no CodeDirectory in the signature")?;
    if be32(cd, 0)? != CSMAGIC_CODEDIRECTORY {
        return Err("slot 0 is not a CodeDirectory".into());
    }
    let flags = be32(cd, 12)?;
    let hash_offset = be32(cd, 16)? as usize;
    let ident_offset = be32(cd, 20)? as usize;
    let special_slots = be32(cd, 24)? as usize;
    let code_slots = be32(cd, 28)? as usize;
    let mut code_limit = be32(cd, 32)? as u64;
    let hash_size = *bytes_at(cd, 36, 1)?.first().unwrap() as usize;
    let hash_type = *bytes_at(cd, 37, 1)?.first().unwrap();
    let page_shift = *bytes_at(cd, 39, 1)?.first().unwrap();
    let version = be32(cd, 8)?;
    if version >= 0x20300 && code_limit == 0 {
        code_limit = be64(cd, 56)?;
    }
    let code_limit = code_limit as usize;
    if hash_type != CS_HASHTYPE_SHA256 || hash_size != 32 {
        return Err(format!(
            "hash type {hash_type} of size {hash_size}, not SHA-256"
        ));
    }
    if code_limit != dataoff {
        return Err(format!(
            "the signature covers {code_limit} bytes, but starts at {dataoff}"
        ));
    }
    let page = 1usize << page_shift;
    if page_shift == 0 || code_slots != code_limit.div_ceil(page) {
        return Err(format!(
            "{code_slots} code slots for {code_limit} bytes in pages of {page}"
        ));
    }
    for i in 0..code_slots {
        let data = &b[i * page..((i + 1) * page).min(code_limit)];
        let want = bytes_at(cd, hash_offset + i * 32, 32)?;
        if sha256(data) != want {
            return Err(format!(
                "page {i} (bytes {}..) does not match its hash in the CodeDirectory",
                i * page
            ));
        }
    }
    for slot in 1..=special_slots {
        let want = bytes_at(cd, hash_offset - slot * 32, 32)?;
        let have = match blobs.iter().find(|(k, _)| *k as usize == slot) {
            Some((_, blob)) => sha256(blob),
            None => [0; 32],
        };
        if have != want {
            return Err(format!("special slot -{slot} does not match its hash"));
        }
    }
    Ok(Signature {
        identifier: cstr(cd, ident_offset)?,
        adhoc: flags & CS_ADHOC != 0,
        code_pages: code_slots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_matches_the_fips_examples() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            sha256_hex(b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
        );
        assert_eq!(
            sha256_hex(&vec![b'a'; 1_000_000]),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        // The padding's edge cases: the length fits in the last block or needs another.
        for (n, want) in [
            (
                55,
                "02779466cdec163811d078815c633f21901413081449002f24aa3e80f0b88ef7",
            ),
            (
                56,
                "d4817aa5497628e7c77e6b606107042bbba3130888c5f47a375e6179be789fbb",
            ),
            (
                63,
                "c7723fa1e0127975e49e62e753db53924c1bd84b8ac1ac08df78d09270f3d971",
            ),
            (
                64,
                "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b",
            ),
            (
                65,
                "98ce42deef51d40269d542f5314bef2c7468d401ad5d85168bfab4c0108f75f7",
            ),
            (
                119,
                "f616b0d54e78571a9611f343c9f8e022e859e920381ab0e4d3da01e193a7bd7e",
            ),
            (
                120,
                "6edd9f6f9cc92cded36e6c4a580933f9c9f1b90562b46903b806f21902a1a54f",
            ),
        ] {
            assert_eq!(sha256_hex(&vec![0u8; n]), want, "{n} zero bytes");
        }
    }
}
