//! The `--metrics-listen` endpoint: `GET /metrics` answers the families as text (OpenMetrics
//! when the scraper asks for it, Prometheus' text otherwise), read at that moment. HTTP/1.1,
//! one task per scraper connection, each request bounded; gone when dropped.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{Identity, Source, text};

/// A scraper connection that says nothing for this long is closed.
const IDLE: Duration = Duration::from_secs(30);

pub(super) struct Endpoint {
    pub(super) addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        // The accept loop owns the connection tasks (a JoinSet): aborting it ends them all.
        self.task.abort();
    }
}

impl Endpoint {
    pub(super) async fn start(
        addr: SocketAddr,
        identity: &Identity,
        source: Source,
    ) -> anyhow::Result<Endpoint> {
        let listener =
            TcpListener::bind(addr)
                .await
                .map_err(|e| crate::error::ConfigError::Rejected {
                    name: "--metrics-listen".into(),
                    reason: format!("cannot listen on {addr}: {e}"),
                })?;
        let addr = listener.local_addr().context("the metrics listener")?;
        let common: Vec<(&'static str, String)> = identity
            .labels
            .iter()
            .map(|(label, _, v)| (*label, v.clone()))
            .collect();
        tracing::info!("metrics at http://{addr}/metrics");
        let task = tokio::spawn(accept(listener, common, source));
        Ok(Endpoint { addr, task })
    }
}

async fn accept(listener: TcpListener, common: Vec<(&'static str, String)>, source: Source) {
    let mut conns = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of descriptors, say: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        while conns.try_join_next().is_some() {}
        let (common, source) = (common.clone(), source.clone());
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let reply = answer(&req, &common, &source);
                async move { Ok::<_, std::convert::Infallible>(reply) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(IDLE, conn).await;
        });
    }
}

fn answer<B>(
    req: &Request<B>,
    common: &[(&'static str, String)],
    source: &Source,
) -> Response<Full<Bytes>> {
    let reply = |status, kind: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = kind.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "wsbench serves its metrics at /metrics\n".into(),
        );
    }
    if req.method() != hyper::Method::GET && req.method() != hyper::Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".into(),
        );
    }
    let openmetrics = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.contains("application/openmetrics-text"))
        });
    let body = text::render(&source(), common, openmetrics);
    let kind = if openmetrics {
        text::OPENMETRICS
    } else {
        text::PROMETHEUS
    };
    reply(StatusCode::OK, kind, body)
}
