//! The library's error type. Every variant names the object involved and, where
//! there is one, what the operator can do about it.

use std::fmt;

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: i32 = 0;
    pub const ERROR: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const STOPPED: i32 = 3;
    pub const INTERRUPTED: i32 = 130;
}

/// Where a request went: used to name the object in messages.
#[derive(Debug, Clone, Default)]
pub struct Target {
    pub context: String,
    pub server: String,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or values (exit 2).
    #[error("{0}")]
    Usage(String),

    #[error("{kind} \"{name}\" not found in namespace \"{namespace}\" (context \"{context}\")")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
        context: String,
    },

    #[error("namespace \"{namespace}\" not found (context \"{context}\")")]
    NamespaceNotFound { namespace: String, context: String },

    #[error("forbidden: user \"{user}\" cannot {verb} {resource} {} (context \"{context}\"): {}", scope(.namespace), grant(.namespace))]
    Forbidden {
        user: String,
        verb: String,
        resource: String,
        namespace: String,
        context: String,
    },

    #[error("the server rejected {action}: {message}")]
    Api { action: String, message: String },

    #[error("cannot reach the Kubernetes API server at {server} (context \"{context}\"): {reason}; check that the cluster is running and --kubeconfig/--context point at it")]
    Unreachable {
        server: String,
        context: String,
        reason: String,
    },

    #[error("cannot trust the API server at {server} (context \"{context}\"): {reason}; check the cluster's certificate-authority in the kubeconfig")]
    Untrusted {
        server: String,
        context: String,
        reason: String,
    },

    #[error("authentication failed against {server} (context \"{context}\"): the credentials are invalid or expired; log in again or fix the user entry in the kubeconfig")]
    Unauthorized { server: String, context: String },

    #[error("kubeconfig: {0}")]
    Kubeconfig(String),

    /// A concurrent change by someone else was detected (exit 3).
    #[error("{object} was changed by someone else since it was read ({detail}); nothing more was written — re-run to see the new state")]
    Conflict { object: String, detail: String },

    /// A health gate or safety check stopped the operation (exit 3).
    #[error("{0}")]
    Stopped(String),

    /// The operator declined, or no TTY was there to ask (exit 3, nothing written).
    #[error("{0}")]
    Declined(String),

    #[error("interrupted: {0}")]
    Interrupted(String),

    #[error("timed out after {after}: {what}")]
    Timeout { what: String, after: String },

    #[error("{0}")]
    Io(String),

    /// Prometheus could not be asked before the run started (exit 1, nothing written).
    #[error("{0}")]
    Prometheus(String),

    /// This run's lock was lost (not renewed in time, or taken): it stopped before its
    /// next write (exit 3); the command that continues it is added.
    #[error("{0}")]
    LockLost(String),

    /// A run that stopped half-way on an error, with the command that continues it.
    #[error("{cause}; {next}")]
    Aborted { cause: Box<Error>, next: String },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Aborted { cause, .. } => cause.exit_code(),
            Error::Usage(_) => exit::USAGE,
            Error::Conflict { .. }
            | Error::LockLost(_)
            | Error::Stopped(_)
            | Error::Declined(_)
            | Error::Timeout { .. } => exit::STOPPED,
            Error::Interrupted(_) => exit::INTERRUPTED,
            _ => exit::ERROR,
        }
    }

    pub fn stopped(msg: impl fmt::Display) -> Self {
        Error::Stopped(msg.to_string())
    }

    /// Adds the command that continues an interrupted run, unless the message
    /// already tells the operator what to do next.
    pub fn with_next_step(self, next: impl Into<String>) -> Self {
        match self {
            e @ (Error::Usage(_)
            | Error::Declined(_)
            | Error::Interrupted(_)
            | Error::Stopped(_)
            | Error::Aborted { .. }) => e,
            cause => Error::Aborted {
                cause: Box::new(cause),
                next: next.into(),
            },
        }
    }

    pub fn usage(msg: impl fmt::Display) -> Self {
        Error::Usage(msg.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Describes the request that failed, so that a kube error can be turned into one
/// line naming the object.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub verb: &'a str,
    pub resource: &'a str,
    pub name: Option<&'a str>,
    pub namespace: &'a str,
}

impl Target {
    /// Maps a kube error for `req` to an [`Error`] that names the object and the fix.
    pub fn map(&self, req: Request<'_>, err: kube::Error) -> Error {
        match err {
            kube::Error::Api(status) => {
                self.map_status(req, status.code, &status.message, &status.reason)
            }
            other => {
                let reason = root_cause(&other);
                if reason.to_ascii_lowercase().contains("certificate") {
                    Error::Untrusted {
                        server: self.server.clone(),
                        context: self.context.clone(),
                        reason,
                    }
                } else if looks_unreachable(&reason) {
                    Error::Unreachable {
                        server: self.server.clone(),
                        context: self.context.clone(),
                        reason,
                    }
                } else {
                    Error::Api {
                        action: describe(&req),
                        message: reason,
                    }
                }
            }
        }
    }

    fn map_status(&self, req: Request<'_>, code: u16, message: &str, reason: &str) -> Error {
        match code {
            404 if req.name.is_some() => Error::NotFound {
                kind: singular(req.resource),
                name: req.name.unwrap_or_default().to_string(),
                namespace: req.namespace.to_string(),
                context: self.context.clone(),
            },
            401 => Error::Unauthorized {
                server: self.server.clone(),
                context: self.context.clone(),
            },
            403 => Error::Forbidden {
                user: forbidden_user(message).unwrap_or_else(|| "(current user)".into()),
                verb: req.verb.to_string(),
                resource: req.resource.to_string(),
                namespace: req.namespace.to_string(),
                context: self.context.clone(),
            },
            409 => Error::Conflict {
                object: match req.name {
                    Some(n) => format!("{} \"{}\"", singular(req.resource), n),
                    None => req.resource.to_string(),
                },
                detail: if reason == "AlreadyExists" {
                    "it already exists".into()
                } else {
                    "resourceVersion/uid precondition failed".into()
                },
            },
            _ => Error::Api {
                action: describe(&req),
                message: if message.is_empty() {
                    format!("HTTP {code} {reason}")
                } else {
                    message.to_string()
                },
            },
        }
    }
}

/// `in namespace "x"`, or `across all namespaces` for cluster-wide requests.
pub fn scope(namespace: &str) -> String {
    if namespace.is_empty() || namespace == "(all namespaces)" {
        "across all namespaces".into()
    } else {
        format!("in namespace \"{namespace}\"")
    }
}

/// How to grant what was missing: a Role in one namespace, a ClusterRole across all.
pub fn grant(namespace: &str) -> &'static str {
    if namespace.is_empty() || namespace == "(all namespaces)" {
        "grant it cluster-wide with a ClusterRole holding deploy/rbac.yaml's rules and a ClusterRoleBinding"
    } else {
        "grant it with a Role such as deploy/rbac.yaml"
    }
}

fn describe(req: &Request<'_>) -> String {
    match req.name {
        Some(n) => format!(
            "{} {} \"{}\" {}",
            req.verb,
            singular(req.resource),
            n,
            scope(req.namespace)
        ),
        None => format!("{} {} {}", req.verb, req.resource, scope(req.namespace)),
    }
}

/// `statefulsets` → `statefulset`; subresources keep their path (`pods/status`).
fn singular(resource: &str) -> &'static str {
    match resource {
        "statefulsets" => "statefulset",
        "pods" => "pod",
        "persistentvolumeclaims" => "persistentvolumeclaim",
        "persistentvolumes" => "persistentvolume",
        "controllerrevisions" => "controllerrevision",
        "services" => "service",
        "namespaces" => "namespace",
        "storageclasses" => "storageclass",
        "poddisruptionbudgets" => "poddisruptionbudget",
        _ => "object",
    }
}

/// The API server's 403 message reads `User "x" cannot ...`.
fn forbidden_user(message: &str) -> Option<String> {
    let rest = message.split("User \"").nth(1)?;
    Some(rest.split('"').next()?.to_string())
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        last = e.to_string();
        cur = e.source();
    }
    last
}

fn looks_unreachable(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    [
        "connection refused",
        "dns error",
        "timed out",
        "connect",
        "no route",
        "unreachable",
        "reset by peer",
        "failed to lookup",
    ]
    .iter()
    .any(|p| r.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> Target {
        Target {
            context: "prod".into(),
            server: "https://k:6443".into(),
        }
    }

    fn req(name: Option<&'static str>) -> Request<'static> {
        Request {
            verb: "get",
            resource: "statefulsets",
            name,
            namespace: "production",
        }
    }

    #[test]
    fn not_found_names_object_namespace_and_context() {
        let e = target().map_status(req(Some("redis")), 404, "", "NotFound");
        assert_eq!(
            e.to_string(),
            "statefulset \"redis\" not found in namespace \"production\" (context \"prod\")"
        );
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn forbidden_names_user_verb_and_resource() {
        let msg = "statefulsets.apps \"redis\" is forbidden: User \"sts-safe-limited\" cannot get resource \"statefulsets\"";
        let e = target().map_status(req(Some("redis")), 403, msg, "Forbidden");
        let s = e.to_string();
        assert!(
            s.contains("user \"sts-safe-limited\" cannot get statefulsets"),
            "{s}"
        );
        assert!(s.contains("namespace \"production\""), "{s}");
    }

    #[test]
    fn conflict_is_a_safety_stop() {
        let e = target().map_status(
            req(Some("redis")),
            409,
            "the object has been modified",
            "Conflict",
        );
        assert_eq!(e.exit_code(), 3);
        assert!(e
            .to_string()
            .contains("statefulset \"redis\" was changed by someone else"));
    }
}
