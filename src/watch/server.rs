//! The watcher's HTTP endpoint: `/healthz`, `/readyz`, `/metrics`.
//!
//! Connections are bounded: at most [`ListenerLimits::max_connections`] are served at
//! once (the next ones wait in the kernel's backlog, holding no file descriptor of
//! ours), and one that sends no request headers for [`ListenerLimits::idle_timeout`],
//! idle between requests included, is closed. Otherwise idle connections would hold
//! file descriptors forever, and with them the reads of the desired state could fail.

use super::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How many connections the endpoint serves, and for how long one may idle.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a connection has to send a request's headers (idle time between requests included).
    pub idle_timeout: Duration,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits { max_connections: 64, idle_timeout: Duration::from_secs(30) }
    }
}

/// How long to wait before accepting again after an accept failed (too many open files):
/// the failure passes when connections close, and a loop retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the endpoint on `listener` until `stop`, within `limits`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    limits: ListenerLimits,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(metrics);
    let service = hyper_util::service::TowerToHyperService::new(app);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.idle_timeout);
    // Accepting fails as long as the process has no file descriptor left: said once.
    let mut failing = false;
    loop {
        // A permit first: past the limit, connections wait unaccepted.
        let permit = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
        };
        let stream = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    failing = false;
                    stream
                }
                Err(error) => {
                    if !std::mem::replace(&mut failing, true) {
                        tracing::warn!(%error, "cannot accept a connection on the health and metrics endpoint; trying again");
                    }
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let connection = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                () = stop.cancelled() => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    // A standby is healthy and ready to lead: not ready would hold up every rolling
    // update of a Deployment whose replicas all stand by but one.
    if let Some(leader) = metrics.standby() {
        return (StatusCode::OK, format!("standby: {}\n", crate::escape::text(&leader)));
    }
    match metrics.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        // The reason quotes file names and diagnostics: one line of plain text.
        Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", crate::escape::text(&reason))),
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
}
