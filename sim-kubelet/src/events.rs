//! core/v1 Events, recorded like a kubelet (or scheduler, or provisioner) does: one Event
//! object per (object, reason, field path), whose count grows on repeats.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tracing::debug;

use crate::util::{is_not_found, random_hex};

pub const KUBELET: &str = "kubelet";
pub const SCHEDULER: &str = "default-scheduler";
pub const PROVISIONER: &str = "sts-safe.dev/sim";

/// One event to record.
#[derive(Clone, Debug)]
pub struct EventSpec {
    pub reason: String,
    pub message: String,
    pub warning: bool,
    /// `source.component`
    pub component: &'static str,
    /// `source.host`
    pub host: Option<String>,
    /// `involvedObject.fieldPath`, e.g. `spec.containers{redis}`.
    pub field_path: Option<String>,
}

impl EventSpec {
    pub fn normal(component: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            message: message.into(),
            warning: false,
            component,
            host: None,
            field_path: None,
        }
    }

    pub fn warning(component: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self {
            warning: true,
            ..Self::normal(component, reason, message)
        }
    }

    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.into());
        self
    }

    pub fn field_path(mut self, path: String) -> Self {
        self.field_path = Some(path);
        self
    }
}

/// The object reference an Event names for `obj`.
pub fn object_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: meta.name.clone(),
        namespace: meta.namespace.clone(),
        uid: meta.uid.clone(),
        ..Default::default()
    }
}

/// Creates and updates Events.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
}

impl Recorder {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    fn api(&self, ns: &str) -> Api<Event> {
        Api::namespaced(self.client.clone(), ns)
    }

    /// Creates a new Event with count 1; returns its name, or None when it failed.
    pub async fn create(&self, involved: &ObjectReference, spec: &EventSpec) -> Option<String> {
        let ns = involved
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let base: String = involved
            .name
            .as_deref()
            .unwrap_or("object")
            .chars()
            .take(200)
            .collect();
        let now = Time(Timestamp::now());
        let mut involved = involved.clone();
        involved.field_path.clone_from(&spec.field_path);
        let name = format!("{base}.{}", random_hex());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: involved,
            reason: Some(spec.reason.clone()),
            message: Some(spec.message.clone()),
            type_: Some(if spec.warning { "Warning" } else { "Normal" }.into()),
            source: Some(EventSource {
                component: Some(spec.component.into()),
                host: spec.host.clone(),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        match self.api(&ns).create(&PostParams::default(), &event).await {
            Ok(_) => Some(name),
            Err(e) => {
                debug!(%ns, reason = %spec.reason, error = %e, "creating event failed");
                None
            }
        }
    }

    /// Sets the count, message and lastTimestamp of an existing Event; false when it is
    /// gone or the update failed.
    pub async fn bump(&self, ns: &str, name: &str, count: i32, message: &str) -> bool {
        let patch = json!({
            "count": count,
            "message": message,
            "lastTimestamp": Time(Timestamp::now()),
        });
        match self
            .api(ns)
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => true,
            Err(e) => {
                if !is_not_found(&e) {
                    debug!(%ns, %name, error = %e, "updating event failed");
                }
                false
            }
        }
    }
}

/// The Events of one object, aggregated per (reason, field path).
pub struct ObjectEvents {
    recorder: Recorder,
    involved: ObjectReference,
    seen: HashMap<(String, Option<String>), (String, i32)>,
}

impl ObjectEvents {
    pub fn new(recorder: Recorder, involved: ObjectReference) -> Self {
        Self {
            recorder,
            involved,
            seen: HashMap::new(),
        }
    }

    /// Records `spec`: creates the Event the first time, bumps its count afterwards.
    pub async fn record(&mut self, spec: EventSpec) {
        let key = (spec.reason.clone(), spec.field_path.clone());
        if let Some((name, count)) = self.seen.get_mut(&key) {
            let ns = self.involved.namespace.as_deref().unwrap_or("default");
            if self
                .recorder
                .bump(ns, name, *count + 1, &spec.message)
                .await
            {
                *count += 1;
                return;
            }
            self.seen.remove(&key);
        }
        if let Some(name) = self.recorder.create(&self.involved, &spec).await {
            self.seen.insert(key, (name, 1));
        }
    }
}
