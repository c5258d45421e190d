//! Serving the router on a listener: one task per connection (HTTP/1.1 or HTTP/2, upgrades
//! allowed), each held to a deadline for its request headers, and a graceful stop.
//!
//! `axum::serve` would do the rest but gives hyper no timer, and without one hyper applies
//! no header-read timeout: a client that sends half a request line keeps its connection
//! (and its task and buffers) forever, and a few thousand such clients exhaust the server.
//! Before hyper's HTTP/1 timer runs, hyper-util reads the first bytes to tell HTTP/1 from
//! HTTP/2 without any deadline; [`protocol_known`] gives that phase the same one.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};

/// Serves `router` until `stop` resolves; then accepts no more connections, lets requests in
/// flight finish and closes idle connections, and returns once every connection is done.
/// A connection whose request headers do not arrive within `header_timeout` (at most twice
/// that from its first byte on) is closed.
pub async fn serve(listener: TcpListener, router: Router, header_timeout: Duration, stop: impl Future<Output = ()>) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
    // HTTP/2 pings and stream resets need a timer too
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    // ends the wait for a connection's first bytes: one that sent nothing has nothing in flight
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = TowerToHyperService::new(router.clone());
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            tokio::select! {
                known = protocol_known(&stream, header_timeout) => if !known { return },
                _ = stopped.wait_for(|stopped| *stopped) => return,
            }
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // a closed or timed-out connection is the client's business, not an error of ours
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
}

/// Waits, at most `deadline`, until the connection's first bytes tell HTTP/1 from the
/// HTTP/2 preface as hyper-util will read them; false when they do not come (or the client
/// left). Peeking leaves the bytes for hyper.
async fn protocol_known(stream: &TcpStream, deadline: Duration) -> bool {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut seen = [0u8; PREFACE.len()];
    let known = async {
        loop {
            match stream.peek(&mut seen).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == PREFACE.len() || seen[..n] != PREFACE[..n] => return true,
                // a part of the preface: a peek would answer at once, so wait a little
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    };
    tokio::time::timeout(deadline, known).await.unwrap_or(false)
}

/// A failed accept: a connection the client gave up on is skipped; anything else (out of
/// file descriptors) is logged and waited out, as accepting again at once would only spin.
async fn accept_failed(err: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(err.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    tracing::error!(error = %err, "accepting a connection failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
