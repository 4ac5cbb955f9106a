//! Builds the kube client from kubectl's flags and carries what every command needs:
//! client, namespace, output mode, whether a terminal is attached, and --yes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::{GlobalArgs, Output};
use crate::error::{Error, Request, Result, Target};

pub struct Ctx {
    pub client: kube::Client,
    pub namespace: String,
    pub target: Target,
    pub output: Output,
    /// A person can answer prompts (stdin and stderr are terminals).
    pub interactive: bool,
    /// stderr is a terminal: progress bars may draw.
    pub stderr_tty: bool,
    pub request_timeout: Option<Duration>,
    /// The kubeconfig context's user entry ("serviceaccount" in a pod): who runs this,
    /// when the server cannot say (SelfSubjectReview).
    pub kubeconfig_user: String,
    /// Checked before every write: the lease of the StatefulSet being written
    /// (`exec::lease`); none outside a locked operation.
    gate: Mutex<Option<Arc<dyn WriteGate>>>,
}

/// What may stop a run before its next write (the lease, once it is lost).
pub trait WriteGate: Send + Sync {
    /// Err once this run may no longer write.
    fn check(&self) -> Result<()>;
    /// The run has reached step `k` of `n` (shown to others in the lease).
    fn step(&self, k: usize, n: usize);
    /// Who holds the lock (`user@host/pid`).
    fn holder(&self) -> String;
}

/// Where the kubeconfig comes from, in kubectl's order of precedence.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Flag(PathBuf),
    Env(String),
    Home(PathBuf),
    InCluster,
}

pub fn kubeconfig_source(flag: Option<&Path>, env: Option<&str>, home: Option<&Path>) -> Source {
    if let Some(p) = flag {
        return Source::Flag(p.to_path_buf());
    }
    if let Some(e) = env.filter(|e| !e.is_empty()) {
        return Source::Env(e.to_string());
    }
    if let Some(h) = home {
        let p = h.join(".kube").join("config");
        if p.exists() {
            return Source::Home(p);
        }
    }
    Source::InCluster
}

/// The namespace to use: the flag, else the context's, else "default".
pub fn resolve_namespace(flag: Option<&str>, from_context: Option<&str>) -> String {
    flag.or(from_context)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string()
}

fn read_kubeconfig(source: &Source) -> Result<Kubeconfig> {
    match source {
        Source::Flag(p) | Source::Home(p) => Kubeconfig::read_from(p).map_err(|e| {
            Error::Kubeconfig(format!("cannot load \"{}\": {}", p.display(), one_line(&e)))
        }),
        Source::Env(paths) => {
            let mut merged: Option<Kubeconfig> = None;
            for p in std::env::split_paths(paths).filter(|p| !p.as_os_str().is_empty()) {
                if !p.exists() {
                    continue; // kubectl ignores missing entries of $KUBECONFIG
                }
                let kc = Kubeconfig::read_from(&p).map_err(|e| {
                    Error::Kubeconfig(format!("cannot load \"{}\": {}", p.display(), one_line(&e)))
                })?;
                merged = Some(match merged {
                    None => kc,
                    Some(m) => m.merge(kc).map_err(|e| Error::Kubeconfig(one_line(&e)))?,
                });
            }
            merged.ok_or_else(|| {
                Error::Kubeconfig(format!("none of the files in $KUBECONFIG ({paths}) exists"))
            })
        }
        Source::InCluster => unreachable!("in-cluster config has no kubeconfig file"),
    }
}

fn one_line(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let t = inner.to_string();
        if !s.contains(&t) {
            s = format!("{s}: {t}");
        }
        cur = inner.source();
    }
    s.replace('\n', " ")
}

impl Ctx {
    pub async fn from_args(g: &GlobalArgs) -> Result<Ctx> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let env = std::env::var("KUBECONFIG").ok();
        let source = kubeconfig_source(g.kubeconfig.as_deref(), env.as_deref(), home.as_deref());
        let mut kubeconfig_user = "serviceaccount".to_string();
        let (mut config, context_name) = match &source {
            Source::InCluster => {
                if g.context.is_some() {
                    return Err(Error::Kubeconfig(format!(
                        "--context given but no kubeconfig was found (looked at $KUBECONFIG and {}/.kube/config)",
                        home.as_deref().unwrap_or(Path::new("~")).display()
                    )));
                }
                let cfg = kube::Config::incluster().map_err(|e| {
                    Error::Kubeconfig(format!(
                        "no kubeconfig found (--kubeconfig, $KUBECONFIG, ~/.kube/config) and not running in a cluster: {}",
                        one_line(&e)
                    ))
                })?;
                (cfg, "in-cluster".to_string())
            }
            src => {
                let kc = read_kubeconfig(src)?;
                let name = match g.context.clone().or_else(|| kc.current_context.clone()) {
                    Some(n) => n,
                    None => {
                        return Err(Error::Kubeconfig(
                            "no current-context is set; pass --context NAME".into(),
                        ))
                    }
                };
                if !kc.contexts.iter().any(|c| c.name == name) {
                    let known: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
                    return Err(Error::Kubeconfig(format!(
                        "context \"{name}\" does not exist (known contexts: {})",
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
                if let Some(u) = kc
                    .contexts
                    .iter()
                    .find(|c| c.name == name)
                    .and_then(|c| c.context.as_ref())
                    .and_then(|c| c.user.clone())
                {
                    kubeconfig_user = u;
                }
                let opts = KubeConfigOptions {
                    context: Some(name.clone()),
                    ..Default::default()
                };
                let cfg = kube::Config::from_custom_kubeconfig(kc, &opts)
                    .await
                    .map_err(|e| {
                        Error::Kubeconfig(format!("context \"{name}\": {}", one_line(&e)))
                    })?;
                (cfg, name)
            }
        };
        let ctx_ns =
            (!config.default_namespace.is_empty()).then(|| config.default_namespace.clone());
        let namespace = resolve_namespace(g.namespace.as_deref(), ctx_ns.as_deref());
        let timeout = g.request_timeout.filter(|d| !d.is_zero());
        if let Some(t) = timeout {
            config.connect_timeout = Some(t);
            config.read_timeout = Some(t);
            config.write_timeout = Some(t);
        }
        let target = Target {
            context: context_name,
            server: config
                .cluster_url
                .to_string()
                .trim_end_matches('/')
                .to_string(),
        };
        config.default_namespace = namespace.clone();
        // Named in the API server's audit log, as kubectl names itself.
        config.headers.push((
            http::header::USER_AGENT,
            http::HeaderValue::from_static(concat!("kubectl-sts-safe/", env!("CARGO_PKG_VERSION"))),
        ));
        let client = match nodelay_client(&config) {
            Some(c) => Ok(c),
            None => kube::Client::try_from(config),
        }
        .map_err(|e| {
            Error::Kubeconfig(format!("context \"{}\": {}", target.context, one_line(&e)))
        })?;
        let interactive = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
        Ok(Ctx {
            client,
            namespace,
            target,
            output: g.output,
            interactive,
            stderr_tty: std::io::stderr().is_terminal(),
            request_timeout: timeout,
            kubeconfig_user,
            gate: Mutex::new(None),
        })
    }

    /// Ok while this run may write (see [`WriteGate`]); call right before every write.
    pub fn may_write(&self) -> Result<()> {
        let gate = self.gate.lock().expect("gate lock").clone();
        gate.map_or(Ok(()), |g| g.check())
    }

    /// Installs (or, with None, removes) the check made before every write.
    pub fn set_gate(&self, gate: Option<Arc<dyn WriteGate>>) {
        *self.gate.lock().expect("gate lock") = gate;
    }

    /// The holder of the lock this run writes under, if any.
    pub fn lock_holder(&self) -> Option<String> {
        let gate = self.gate.lock().expect("gate lock").clone();
        gate.map(|g| g.holder())
    }

    /// Tells the gate (the lease) which step the run has reached.
    pub fn report_step(&self, k: usize, n: usize) {
        if let Some(g) = self.gate.lock().expect("gate lock").clone() {
            g.step(k, n);
        }
    }

    /// Maps a kube error on a request in this context's namespace.
    pub fn err(&self, verb: &str, resource: &str, name: Option<&str>, e: kube::Error) -> Error {
        self.target.map(
            Request {
                verb,
                resource,
                name,
                namespace: &self.namespace,
            },
            e,
        )
    }

    /// Seconds a watch may stay open server-side: below any --request-timeout so the
    /// client's read timeout never cuts a healthy watch.
    pub fn watch_timeout_secs(&self) -> u32 {
        match self.request_timeout {
            Some(t) => t.as_secs().clamp(1, 290) as u32,
            None => 290,
        }
    }
}

/// kube's client with TCP_NODELAY on its connections. kube-client leaves Nagle's
/// algorithm on, which stalls each request that opens a connection by ~40 ms (measured
/// in bench/RESULTS.md). Same layers as kube's own builder; None (use kube's) when the
/// kubeconfig sets a proxy, which only kube's builder supports.
fn nodelay_client(config: &kube::Config) -> Option<kube::Client> {
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;
    if config.proxy_url.is_some() {
        return None;
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http).ok()?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    // Requests are logged by method, URL and status only: headers carry credentials.
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .map_request(|req: http::Request<kube::client::Body>| {
            tracing::debug!("HTTP {} {}", req.method(), req.uri());
            req
        })
        .option_layer(config.auth_layer().ok()?)
        .layer(config.extra_headers_layer().ok()?)
        .map_response(|res: http::Response<hyper::body::Incoming>| {
            tracing::debug!("HTTP {}", res.status());
            res
        })
        .map_err(tower::BoxError::from)
        .service(http_client);
    Some(kube::Client::new(service, config.default_namespace.clone()))
}

/// The context names of the kubeconfig kubectl would read (for completion); empty when
/// there is none or it cannot be read.
pub fn kubeconfig_contexts(flag: Option<&Path>) -> Vec<String> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let env = std::env::var("KUBECONFIG").ok();
    let source = kubeconfig_source(flag, env.as_deref(), home.as_deref());
    if source == Source::InCluster {
        return Vec::new();
    }
    read_kubeconfig(&source)
        .map(|kc| kc.contexts.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_beats_env_beats_home() {
        let tmp = std::env::temp_dir().join(format!("sts-safe-ctx-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join(".kube")).unwrap();
        std::fs::write(tmp.join(".kube/config"), "").unwrap();
        assert_eq!(
            kubeconfig_source(Some(Path::new("/f")), Some("/e"), Some(&tmp)),
            Source::Flag("/f".into())
        );
        assert_eq!(
            kubeconfig_source(None, Some("/e"), Some(&tmp)),
            Source::Env("/e".into())
        );
        assert_eq!(
            kubeconfig_source(None, Some(""), Some(&tmp)),
            Source::Home(tmp.join(".kube/config"))
        );
        assert_eq!(
            kubeconfig_source(None, None, Some(Path::new("/nonexistent"))),
            Source::InCluster
        );
        std::fs::remove_dir_all(tmp).unwrap();
    }

    #[test]
    fn namespace_flag_then_context_then_default() {
        assert_eq!(resolve_namespace(Some("a"), Some("b")), "a");
        assert_eq!(resolve_namespace(None, Some("b")), "b");
        assert_eq!(resolve_namespace(None, None), "default");
        assert_eq!(resolve_namespace(None, Some("")), "default");
    }
}
