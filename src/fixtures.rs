//! Test-only loader for multi-document YAML fixtures under tests/fixtures/.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::Deserialize;

pub struct Fixture {
    docs: Vec<serde_json::Value>,
}

/// The fixtures' "now": all their timestamps are a little before it.
pub fn now() -> Timestamp {
    "2026-11-20T12:00:00Z".parse().unwrap()
}

pub fn load(file: &str) -> Fixture {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_json::Value::deserialize(d).unwrap_or_else(|e| panic!("{file}: {e}")))
        .filter(|v| !v.is_null())
        .collect();
    Fixture { docs }
}

impl Fixture {
    pub fn all<K: DeserializeOwned>(&self, kind: &str) -> Vec<K> {
        self.docs
            .iter()
            .filter(|d| d["kind"] == kind)
            .map(|d| serde_json::from_value(d.clone()).unwrap_or_else(|e| panic!("{kind}: {e}")))
            .collect()
    }
    pub fn sts(&self) -> StatefulSet {
        self.all::<StatefulSet>("StatefulSet").remove(0)
    }
    pub fn statefulsets(&self) -> Vec<StatefulSet> {
        self.all("StatefulSet")
    }
    pub fn pods(&self) -> Vec<k8s_openapi::api::core::v1::Pod> {
        self.all("Pod")
    }
    pub fn pvcs(&self) -> Vec<k8s_openapi::api::core::v1::PersistentVolumeClaim> {
        self.all("PersistentVolumeClaim")
    }
}
