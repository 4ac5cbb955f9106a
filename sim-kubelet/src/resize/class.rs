//! The resize behaviour a StorageClass asks for through its annotations.

use std::time::Duration;

use k8s_openapi::api::storage::v1::StorageClass;
use kube::ResourceExt;

/// StorageClass annotation: `online` (default), `offline` or `fail`.
pub const EXPANSION_ANNOTATION: &str = "sts-safe.dev/expansion";
/// StorageClass annotation: time from the start of a resize to the controller-side
/// expansion (humantime).
pub const RESIZE_DELAY_ANNOTATION: &str = "sts-safe.dev/resize-delay";
pub const DEFAULT_RESIZE_DELAY: Duration = Duration::from_millis(300);

/// How volumes of a class grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expansion {
    /// The filesystem grows at once, with the volume (kubelet online expansion).
    Online,
    /// The filesystem grows when a pod using the claim is (re)started.
    Offline,
    /// The controller-side expansion fails.
    Fail,
}

/// The resize behaviour of a class, with what was wrong in its annotations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassResize {
    pub expansion: Expansion,
    pub delay: Duration,
    pub warnings: Vec<String>,
}

/// The resize behaviour `class` asks for (defaults when there is no class).
pub fn class_resize(class: Option<&StorageClass>) -> ClassResize {
    let mut warnings = Vec::new();
    let annotations = class.map(|c| c.annotations());
    let get = |key: &str| annotations.and_then(|a| a.get(key)).map(String::as_str);
    let name = class.map(|c| c.name_any()).unwrap_or_default();
    let expansion = match get(EXPANSION_ANNOTATION) {
        None | Some("online") => Expansion::Online,
        Some("offline") => Expansion::Offline,
        Some("fail") => Expansion::Fail,
        Some(other) => {
            warnings.push(format!(
                "storage class {name}: {EXPANSION_ANNOTATION}={other:?} is not online, offline \
                 or fail; expanding online"
            ));
            Expansion::Online
        }
    };
    let delay = match get(RESIZE_DELAY_ANNOTATION) {
        None => DEFAULT_RESIZE_DELAY,
        Some(s) => humantime::parse_duration(s).unwrap_or_else(|e| {
            warnings.push(format!(
                "storage class {name}: {RESIZE_DELAY_ANNOTATION}={s:?}: {e}; using {}",
                humantime::format_duration(DEFAULT_RESIZE_DELAY)
            ));
            DEFAULT_RESIZE_DELAY
        }),
    };
    ClassResize {
        expansion,
        delay,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn class(annotations: &[(&str, &str)]) -> StorageClass {
        StorageClass {
            metadata: ObjectMeta {
                name: Some("c".into()),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn behaviour_from_class() {
        let default = class_resize(None);
        assert_eq!(default.expansion, Expansion::Online);
        assert_eq!(default.delay, DEFAULT_RESIZE_DELAY);
        assert!(default.warnings.is_empty());
        let c = class(&[
            (EXPANSION_ANNOTATION, "offline"),
            (RESIZE_DELAY_ANNOTATION, "1s"),
        ]);
        let r = class_resize(Some(&c));
        assert_eq!(
            (r.expansion, r.delay),
            (Expansion::Offline, Duration::from_secs(1))
        );
        let c = class(&[
            (EXPANSION_ANNOTATION, "fail"),
            (RESIZE_DELAY_ANNOTATION, "500ms"),
        ]);
        let r = class_resize(Some(&c));
        assert_eq!(
            (r.expansion, r.delay),
            (Expansion::Fail, Duration::from_millis(500))
        );
        assert_eq!(
            class_resize(Some(&class(&[(EXPANSION_ANNOTATION, "online")]))).expansion,
            Expansion::Online
        );
        let bad = class_resize(Some(&class(&[
            (EXPANSION_ANNOTATION, "Offline"),
            (RESIZE_DELAY_ANNOTATION, "soon"),
        ])));
        assert_eq!(
            (bad.expansion, bad.delay),
            (Expansion::Online, DEFAULT_RESIZE_DELAY)
        );
        assert_eq!(bad.warnings.len(), 2, "{:?}", bad.warnings);
    }
}
