//! End-to-end tests against the local control plane: a real kube-apiserver and
//! kube-controller-manager (StatefulSet, PV-binder, garbage-collector controllers)
//! with sim-kubelet. Start it with `make cluster-up`, or run everything with `make test`.

#[path = "../support/mod.rs"]
mod support;

mod all_namespaces;
mod canary;
mod completion;
mod current;
mod doctor;
mod errors;
mod faults;
mod lease;
mod metrics;
mod ondelete;
mod prune;
mod prune_hold;
mod recover;
mod resize;
mod scale;
mod server;
mod sim;
mod sim_metrics;
mod status;
