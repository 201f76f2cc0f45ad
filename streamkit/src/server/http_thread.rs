//! An axum router served on a thread of its own, with its own tokio runtime.

use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;

use crate::error::{Error, Result};

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
                    let served = match shutdown {
                        Shutdown::Graceful => {
                            axum::serve(listener, router)
                                .with_graceful_shutdown(async {
                                    let _ = rx.await;
                                })
                                .await
                        }
                        Shutdown::Abrupt => tokio::select! {
                            r = axum::serve(listener, router) => r,
                            _ = rx => Ok(()),
                        },
                    };
                    if let Err(e) = served {
                        tracing::error!(error = %e, server = %thread_name, "server stopped");
                    }
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

impl Drop for HttpThread {
    fn drop(&mut self) {
        self.stop();
    }
}
