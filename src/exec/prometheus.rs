//! Instant queries against Prometheus' HTTP API (`POST /api/v1/query`), for the canary's
//! metric gate. What an answer means is decided in `plan::metrics`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use k8s_openapi::jiff::Timestamp;
use rustls::pki_types::{pem::PemObject, CertificateDer};

use crate::error::{Error, Result};
use crate::plan::metrics::{
    expand, parse_response, MetricQuery, Placeholders, QueryError, QueryOutcome,
};

/// How to reach Prometheus, from the flags.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    pub url: String,
    pub token_file: Option<PathBuf>,
    /// `Name: value` pairs sent with every query.
    pub headers: Vec<String>,
    pub ca_file: Option<PathBuf>,
}

/// A Prometheus server, ready to be asked.
pub struct Prometheus {
    url: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    queries: AtomicU64,
}

fn tls_config(ca_file: Option<&PathBuf>) -> Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Error::usage(format!("--prometheus-ca \"{}\": {e}", path.display()))
            })?;
            let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&pem)
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| {
                    Error::usage(format!(
                        "--prometheus-ca \"{}\" is not a PEM certificate file: {e}",
                        path.display()
                    ))
                })?;
            if certs.is_empty() {
                return Err(Error::usage(format!(
                    "--prometheus-ca \"{}\" holds no certificate",
                    path.display()
                )));
            }
            for c in certs {
                roots.add(c).map_err(|e| {
                    Error::usage(format!("--prometheus-ca \"{}\": {e}", path.display()))
                })?;
            }
        }
        None => {
            // The system's trust store, as any HTTPS client uses; unreadable entries are skipped.
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Io(format!("TLS set-up for Prometheus: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

fn header(name: &str, value: &str, flag: &str) -> Result<(HeaderName, HeaderValue)> {
    let n = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| Error::usage(format!("{flag}: \"{name}\" is not a header name")))?;
    let v = HeaderValue::from_str(value.trim())
        .map_err(|_| Error::usage(format!("{flag}: the value of \"{name}\" is not valid")))?;
    Ok((n, v))
}

impl Prometheus {
    pub fn new(endpoint: &Endpoint) -> Result<Prometheus> {
        let url = endpoint.url.trim_end_matches('/').to_string();
        let uri: http::Uri = url.parse().map_err(|_| {
            Error::usage(format!(
                "--prometheus \"{}\" is not a URL, e.g. http://prometheus.monitoring:9090",
                endpoint.url
            ))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::usage(format!(
                "--prometheus \"{}\" must be an http:// or https:// URL, e.g. http://prometheus.monitoring:9090",
                endpoint.url
            )));
        }
        let mut headers = vec![];
        for h in &endpoint.headers {
            let Some((name, value)) = h.split_once(':') else {
                return Err(Error::usage(format!(
                    "--prometheus-header \"{h}\" must be NAME: VALUE, e.g. X-Scope-OrgID: tenant-1"
                )));
            };
            headers.push(header(name, value, "--prometheus-header")?);
        }
        if let Some(path) = &endpoint.token_file {
            if headers.iter().any(|(n, _)| n == AUTHORIZATION) {
                return Err(Error::usage(
                    "give the Prometheus credentials once: --prometheus-token-file or an Authorization --prometheus-header, not both",
                ));
            }
            let token = std::fs::read_to_string(path).map_err(|e| {
                Error::usage(format!(
                    "--prometheus-token-file \"{}\": {e}",
                    path.display()
                ))
            })?;
            headers.push(header(
                "Authorization",
                &format!("Bearer {}", token.trim()),
                "--prometheus-token-file",
            )?);
        }
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(3)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(endpoint.ca_file.as_ref())?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(Prometheus {
            url,
            client,
            headers,
            timeout: Duration::from_secs(5),
            queries: AtomicU64::new(0),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Queries sent so far (for the report and the benchmark).
    pub fn queries_sent(&self) -> u64 {
        self.queries.load(Ordering::Relaxed)
    }

    /// One instant query, evaluated now.
    pub async fn query(
        &self,
        expr: &str,
    ) -> std::result::Result<Vec<crate::plan::metrics::Sample>, QueryError> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        let body: String = form_urlencoded::Serializer::new(String::new())
            .append_pair("query", expr)
            .finish();
        let mut req = http::Request::post(format!("{}/api/v1/query", self.url))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| QueryError::Unavailable(format!("request: {e}")))?;
        tracing::debug!("Prometheus POST {}/api/v1/query {expr}", self.url);
        let ask = async {
            let res = self.client.request(req).await.map_err(|e| {
                let mut msg = e.to_string();
                let mut src = std::error::Error::source(&e);
                while let Some(s) = src {
                    msg = format!("{msg}: {s}");
                    src = s.source();
                }
                QueryError::Unavailable(format!("cannot reach Prometheus at {}: {msg}", self.url))
            })?;
            let status = res.status().as_u16();
            let bytes = res
                .into_body()
                .collect()
                .await
                .map_err(|e| QueryError::Unavailable(format!("reading the answer: {e}")))?
                .to_bytes();
            parse_response(status, &bytes).map_err(|e| match e {
                QueryError::Unavailable(m) if status == 401 || status == 403 => {
                    QueryError::Unavailable(format!(
                        "Prometheus at {} refused the query ({m}): check --prometheus-token-file / --prometheus-header",
                        self.url
                    ))
                }
                other => other,
            })
        };
        match tokio::time::timeout(self.timeout, ask).await {
            Ok(r) => r,
            Err(_) => Err(QueryError::Unavailable(format!(
                "Prometheus at {} did not answer within {}s",
                self.url,
                self.timeout.as_secs()
            ))),
        }
    }

    /// Every query of the gate for one pod, concurrently; answers in the queries' order.
    pub async fn evaluate(
        &self,
        queries: &[MetricQuery],
        placeholders: &Placeholders<'_>,
    ) -> (Vec<QueryOutcome>, String) {
        let at = Timestamp::now();
        let expanded: Vec<(MetricQuery, String)> = queries
            .iter()
            .map(|q| (q.clone(), expand(&q.expr, placeholders)))
            .collect();
        let answers = futures::future::join_all(expanded.iter().map(|(_, e)| self.query(e))).await;
        let outcomes = expanded
            .into_iter()
            .zip(answers)
            .map(|((q, expanded), result)| QueryOutcome {
                kind: q.kind,
                expanded,
                result,
            })
            .collect();
        (outcomes, at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint {
            url: url.into(),
            ..Default::default()
        }
    }

    fn usage(e: Endpoint) -> String {
        match Prometheus::new(&e) {
            Err(Error::Usage(m)) => m,
            Err(e) => panic!("not a usage error: {e}"),
            Ok(_) => panic!("accepted {e:?}"),
        }
    }

    #[test]
    fn bad_endpoints_are_usage_errors() {
        assert!(usage(endpoint("ftp://p:9090")).contains("must be an http:// or https:// URL"));
        assert!(usage(endpoint("not a url")).contains("is not a URL"));
        let header = Endpoint {
            headers: vec!["X-Scope-OrgID tenant".into()],
            ..endpoint("http://p:9090")
        };
        assert!(usage(header).contains("must be NAME: VALUE"));
        let dir = std::env::temp_dir().join(format!("sts-safe-prom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let token = dir.join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let both = Endpoint {
            token_file: Some(token.clone()),
            headers: vec!["Authorization: Basic eA==".into()],
            ..endpoint("http://p:9090")
        };
        assert!(usage(both).contains("not both"));
        let missing = Endpoint {
            token_file: Some(dir.join("nope")),
            ..endpoint("http://p:9090")
        };
        assert!(usage(missing).starts_with("--prometheus-token-file"));
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let bad_ca = Endpoint {
            ca_file: Some(ca),
            ..endpoint("https://p:9090")
        };
        assert!(usage(bad_ca).contains("holds no certificate"));
        let ok = Endpoint {
            token_file: Some(token),
            headers: vec!["X-Scope-OrgID: tenant-1".into()],
            ..endpoint("https://p:9090/")
        };
        let p = Prometheus::new(&ok).unwrap();
        assert_eq!(p.url(), "https://p:9090");
        assert_eq!(p.headers.len(), 2);
        assert_eq!(p.headers[1].1, "Bearer s3cret");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_never_a_pass() {
        let p = Prometheus::new(&endpoint("http://127.0.0.1:1")).unwrap();
        match p.query("up").await {
            Err(QueryError::Unavailable(m)) => {
                assert!(
                    m.contains("cannot reach Prometheus at http://127.0.0.1:1"),
                    "{m}"
                )
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(p.queries_sent(), 1);
    }
}
