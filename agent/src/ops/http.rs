//! The metrics and health endpoint: `GET /metrics` (Prometheus text format) and `GET /health`
//! (JSON; 200 when the pipeline turns, 503 when it is stalled).
//!
//! A minimal HTTP/1.1 responder on tokio rather than a web framework: two fixed routes do not
//! justify hyper and its dependency tree in a binary meant for a 32-bit gateway. Each connection
//! gets one response and is closed; requests larger than 8 KiB are refused.

use crate::ops::health::Health;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Serves on a bound listener until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    prometheus: PrometheusHandle,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "metrics and health endpoint listening");
    }
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            accepted = listener.accept() => accepted?,
        };
        let prometheus = prometheus.clone();
        let health = health.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(5),
                respond(stream, &prometheus, &health),
            )
            .await;
        });
    }
}

async fn respond(
    mut stream: TcpStream,
    prometheus: &PrometheusHandle,
    health: &Health,
) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        if len == buf.len() {
            return write(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "",
            )
            .await;
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        len += n;
    }
    let request = String::from_utf8_lossy(&buf[..len]);
    let mut parts = request.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    match (method, path) {
        ("GET", "/metrics") => {
            write(
                &mut stream,
                "200 OK",
                "text/plain; version=0.0.4",
                &prometheus.render(),
            )
            .await
        }
        ("GET", "/health") => {
            let report = health.report();
            let status = if report.status == "ok" {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            let body = serde_json::to_string(&report).unwrap_or_default();
            write(&mut stream, status, "application/json", &body).await
        }
        ("GET", _) => {
            write(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "try /metrics or /health\n",
            )
            .await
        }
        _ => write(&mut stream, "405 Method Not Allowed", "text/plain", "").await,
    }
}

async fn write(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}
