//! An axum router served on a thread of its own, with its own tokio runtime.
//!
//! Connections are served by hyper's HTTP/1 server with two limits a client cannot lift: a
//! request's headers must arrive within [`HEADER_READ_TIMEOUT`] of its first byte (an idle
//! keep-alive connection is closed after as long), so a client that sends headers a byte at a
//! time cannot hold a connection open; and at most [`MAX_CONNECTIONS`] connections are served
//! at once (further ones wait in the listen backlog).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

use crate::error::{Error, Result};

/// How long a client may take to send a request's headers.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once by one server.
pub(crate) const MAX_CONNECTIONS: usize = 1024;
/// How long a graceful stop waits for requests in flight.
const GRACE: Duration = Duration::from_secs(10);

/// Limits on what clients can hold (see the module docs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// How a server ends when stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shutdown {
    /// Requests in flight finish first.
    Graceful,
    /// Open connections are dropped with the runtime: for servers whose responses never end
    /// on their own (change streams, push queries).
    Abrupt,
}

/// A server thread; stopped by [`HttpThread::stop`] or on drop. Shared by the query server,
/// the ksqlDB-compatible server and the schema registry.
#[derive(Debug)]
pub(crate) struct HttpThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpThread {
    /// Serves `router` on `listener` (already bound, non-blocking) from a thread named
    /// `name` running a `workers`-thread runtime; returns once it accepts connections.
    pub fn spawn(
        name: &str,
        workers: usize,
        listener: std::net::TcpListener,
        router: Router,
        shutdown: Shutdown,
    ) -> Result<HttpThread> {
        Self::spawn_with(name, workers, listener, router, shutdown, Limits::default())
    }

    /// [`HttpThread::spawn`] with explicit [`Limits`].
    pub fn spawn_with(
        name: &str,
        workers: usize,
        listener: std::net::TcpListener,
        router: Router,
        shutdown: Shutdown,
        limits: Limits,
    ) -> Result<HttpThread> {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let thread_name = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .thread_name(thread_name.clone())
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.into()));
                        return;
                    }
                };
                rt.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.into()));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(()));
                    serve(listener, router, rx, shutdown, limits).await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::Internal(format!("{name} thread died"))))?;
        Ok(HttpThread {
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stops serving and waits for the thread.
    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Accepts connections until `stop` fires, each served on a task of its own.
async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    mut stop: tokio::sync::oneshot::Receiver<()>,
    shutdown: Shutdown,
    limits: Limits,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let conn = http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    if shutdown == Shutdown::Graceful
        && tokio::time::timeout(GRACE, graceful.shutdown())
            .await
            .is_err()
    {
        tracing::warn!("requests still in flight after {GRACE:?}; dropped");
    }
}

impl Drop for HttpThread {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    use super::*;

    fn server(limits: Limits) -> (HttpThread, std::net::SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let http =
            HttpThread::spawn_with("test-http", 1, listener, router, Shutdown::Abrupt, limits)
                .unwrap();
        (http, addr)
    }

    fn get(stream: &mut TcpStream) -> String {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn a_client_sending_its_headers_too_slowly_is_disconnected() {
        let (_http, addr) = server(Limits {
            header_read_timeout: Duration::from_millis(300),
            ..Limits::default()
        });
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHost: loc").unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 256];
        // The server closes the connection (possibly after a 408): the read ends, it does not
        // wait for the read timeout.
        let closed = loop {
            match slow.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(closed, "the connection was not closed by the server");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "closed only after {:?}",
            started.elapsed()
        );
        // Others are still served.
        let mut other = TcpStream::connect(addr).unwrap();
        assert!(get(&mut other).ends_with("ok"));
    }

    #[test]
    fn connections_beyond_the_cap_wait_until_one_ends() {
        let (_http, addr) = server(Limits {
            max_connections: 1,
            ..Limits::default()
        });
        let holder = TcpStream::connect(addr).unwrap();
        // Let the server accept the holder before the second connection arrives.
        std::thread::sleep(Duration::from_millis(200));
        let mut waiting = TcpStream::connect(addr).unwrap();
        waiting
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        waiting
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 64];
        assert!(
            waiting.read(&mut buf).is_err(),
            "a connection beyond the cap was served"
        );
        drop(holder);
        waiting
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reply = String::new();
        waiting.read_to_string(&mut reply).unwrap();
        assert!(reply.ends_with("ok"), "{reply}");
    }
}
