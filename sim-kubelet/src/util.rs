//! Small helpers shared by the modules.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// The HTTP status code of an API error, if the error came from the API server.
pub fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub fn is_not_found(err: &kube::Error) -> bool {
    api_code(err) == Some(404)
}

/// NotFound or Conflict: the object is gone or changed (e.g. a uid precondition failed).
pub fn is_gone_or_conflict(err: &kube::Error) -> bool {
    matches!(api_code(err), Some(404 | 409))
}

/// 16 random hex digits, for generated object names.
pub fn random_hex() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_is_random_and_sized() {
        let a = random_hex();
        let b = random_hex();
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
