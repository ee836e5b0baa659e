//! Accepting connections with the limits a server on a SOC network needs, and HTTPS.
//!
//! `axum::serve` has no header or idle timeout, no connection cap and no TLS, so the accept loop
//! is scry's own, on hyper's HTTP/1 connection builder (the pattern of axum's low-level
//! examples). What it adds:
//! - **Header timeout.** A client has `[server] header_timeout_seconds` to send a request's
//!   headers (and its TLS handshake); hyper arms the same timer while a kept-alive connection
//!   waits for its next request, so idle connections end too.
//! - **Connection caps.** At most `max_connections_per_address` connections per client address,
//!   and `max_connections` in all. At the overall cap the oldest connection that has not yet
//!   sent a request is closed to make room (a silent connection costs an attacker nothing to
//!   hold; a working client has sent something); when every connection has, the new one is
//!   refused. Refusals and closures are counted in `/metrics`.
//! - **TLS** with rustls when `tls_cert` and `tls_key` are set.
//! - **Graceful stop.** On stop, no new connection is taken and open ones finish their current
//!   request, for at most [`STOP_GRACE`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use scry_engine::config::LoadedConfig;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower_service::Service as _;

use crate::ops::{Metrics, Refusal};

/// How long a stopping server waits for requests in progress (a live stream never ends itself).
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// A certificate or key that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("[server] {key} {path}: {message}")]
    Tls {
        key: &'static str,
        path: String,
        message: String,
    },
}

/// The listener's limits and TLS, from `[server]`.
#[derive(Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_per_address: usize,
    pub header_timeout: Duration,
    tls: Option<TlsAcceptor>,
}

impl Limits {
    /// The limits `loaded` asks for; the certificate and key are read and checked here, so a
    /// bad one stops `scry serve` before it listens.
    pub fn from_config(loaded: &LoadedConfig) -> Result<Limits, ListenError> {
        let server = &loaded.config.server;
        let tls = match (&server.tls_cert, &server.tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(
                &loaded.resolve(cert).display().to_string(),
                &loaded.resolve(key).display().to_string(),
            )?),
            _ => None,
        };
        Ok(Limits {
            max_connections: server.max_connections as usize,
            max_per_address: server.max_connections_per_address as usize,
            header_timeout: Duration::from_secs_f64(server.header_timeout_seconds),
            tls,
        })
    }

    /// `https` when the server speaks TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }
}

fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, ListenError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| ListenError::Tls {
            key: "tls_cert",
            path: cert.to_owned(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(ListenError::Tls {
            key: "tls_cert",
            path: cert.to_owned(),
            message: "no PEM certificate in the file".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| ListenError::Tls {
        key: "tls_key",
        path: key.to_owned(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(chain, private)
        })
        .map_err(|e| ListenError::Tls {
            key: "tls_key",
            path: key.to_owned(),
            message: format!("does not go with the certificate: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The connections open now, oldest first.
#[derive(Default)]
struct Connections {
    next: u64,
    open: BTreeMap<u64, Open>,
}

struct Open {
    address: IpAddr,
    /// Set once the connection has sent a whole request's headers.
    spoke: Arc<AtomicBool>,
    close: Arc<Notify>,
}

/// A connection let in: its place in the table, freed when dropped.
struct Admitted {
    id: u64,
    spoke: Arc<AtomicBool>,
    close: Arc<Notify>,
    table: Arc<Mutex<Connections>>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|e| e.into_inner());
        table.open.remove(&self.id);
    }
}

impl Connections {
    /// Lets a connection from `address` in (with whether another was closed for it), or says
    /// why not; at the overall cap the oldest connection that has sent nothing is told to close
    /// and loses its place.
    fn admit(
        table: &Arc<Mutex<Connections>>,
        address: IpAddr,
        limits: &Limits,
    ) -> Result<(Admitted, bool), Refusal> {
        let mut this = table.lock().unwrap_or_else(|e| e.into_inner());
        // At most `max_connections` entries: counting them is cheaper than keeping a count.
        let from_address = this.open.values().filter(|o| o.address == address).count();
        if from_address >= limits.max_per_address {
            return Err(Refusal::PerAddress);
        }
        let mut evicted = false;
        if this.open.len() >= limits.max_connections {
            let silent = this
                .open
                .iter()
                .find(|(_, open)| !open.spoke.load(Ordering::Relaxed))
                .map(|(id, _)| *id);
            let Some(id) = silent else {
                return Err(Refusal::Full);
            };
            let open = this.open.remove(&id).expect("found above");
            open.close.notify_one();
            evicted = true;
        }
        this.next += 1;
        let id = this.next;
        let spoke = Arc::new(AtomicBool::new(false));
        let close = Arc::new(Notify::new());
        this.open.insert(
            id,
            Open {
                address,
                spoke: Arc::clone(&spoke),
                close: Arc::clone(&close),
            },
        );
        Ok((
            Admitted {
                id,
                spoke,
                close,
                table: Arc::clone(table),
            },
            evicted,
        ))
    }
}

/// Serves `router` on `listener` within `limits` until `stop` completes, counting connections
/// in `metrics`.
pub async fn serve(
    router: axum::Router,
    metrics: Metrics,
    listener: TcpListener,
    limits: Limits,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let table = Arc::new(Mutex::new(Connections::default()));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let http = Arc::new(http);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // moment instead of spinning, and go on.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let admitted = match Connections::admit(&table, peer.ip(), &limits) {
            Ok((admitted, evicted)) => {
                if evicted {
                    metrics.connection_evicted();
                }
                admitted
            }
            Err(refusal) => {
                metrics.connection_refused(refusal);
                drop(stream);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = {
            let router = router.clone();
            let spoke = Arc::clone(&admitted.spoke);
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                spoke.store(true, Ordering::Relaxed);
                request.extensions_mut().insert(ConnectInfo(peer));
                router.clone().call(request)
            })
        };
        let http = Arc::clone(&http);
        let watcher = graceful.watcher();
        let tls = limits.tls.clone();
        let header_timeout = limits.header_timeout;
        let metrics = metrics.clone();
        tokio::spawn(async move {
            metrics.connection_opened();
            let close = Arc::clone(&admitted.close);
            let served = async {
                match tls {
                    None => {
                        let connection = http.serve_connection(TokioIo::new(stream), service);
                        finish(watcher.watch(connection), peer).await;
                    }
                    Some(acceptor) => {
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(stream)) => {
                                let connection =
                                    http.serve_connection(TokioIo::new(stream), service);
                                finish(watcher.watch(connection), peer).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                        }
                    }
                }
            };
            tokio::select! {
                () = served => {}
                () = close.notified() => {}
            }
            drop(admitted);
            metrics.connection_closed();
        });
    }
    drop(listener);
    if tokio::time::timeout(STOP_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "stopping: connections still open after {} s are closed",
            STOP_GRACE.as_secs()
        );
    }
    Ok(())
}

/// Runs one connection to its end; errors are the client's (timeouts, resets) and only logged.
async fn finish<C>(connection: C, peer: SocketAddr)
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}
