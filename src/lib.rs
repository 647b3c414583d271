//! Till, a checkout engine: the library behind the `till` binary. `serve` starts the API and
//! its workers; everything else is organised by capability (see ARCHITECTURE.md).

pub mod bench;
pub mod checkout;
pub mod clock;
pub mod config;
pub mod db;
pub mod documents;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod inventory;
pub mod mail;
pub mod metrics;
pub mod money;
pub mod multirow;
pub mod notify;
pub mod orders;
pub mod payments;
pub mod pricing;
pub mod relay;
pub mod state;
pub mod stopping;
pub mod timeline;
pub mod tls;
pub mod verify;
pub mod web;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use config::{Config, Role};
pub use state::AppState;

/// A running Till: its address, its state, and the tasks that stop it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    server: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    prober: JoinHandle<()>,
}

/// How often remote gateways are probed again, so `/readyz` follows one that comes back.
const PROBE_EVERY_SECS: u64 = 60;

/// Whether `start` runs the background workers (tests drive them by hand instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Run,
    Manual,
}

/// Opens the database, binds the listener and starts serving (and the workers).
pub async fn start(cfg: &Config, clock: Clock, workers: Workers) -> anyhow::Result<Running> {
    tls::check()?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("bind {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    // Bound first: the embedded simulator is reached at this address, like a gateway.
    let state = AppState::open(cfg, clock, &format!("http://{addr}")).await?;
    if cfg.demo_catalog {
        web::shop::demo::stock(&state).await?;
    }
    let app = match cfg.role.serves_api() {
        true => http::app(state.clone()),
        false => http::service_app(state.clone()),
    };
    let limits = http::serve::Limits {
        read_timeout: state.read_timeout,
        max_connections: cfg.max_connections,
    };
    let server = tokio::spawn(http::serve::serve(
        listener,
        app,
        limits,
        state.stopping.clone(),
    ));
    let workers = match workers {
        Workers::Run if cfg.role.runs_workers() => {
            let mut all = relay::spawn(&state);
            all.push(checkout::workers::spawn(state.clone()));
            all
        }
        Workers::Run | Workers::Manual => Vec::new(),
    };
    let probed = state.clone();
    let prober = tokio::spawn(async move {
        loop {
            probed.probe_gateways().await;
            if let Some(broker) = &probed.amqp {
                relay::amqp::probe(broker).await;
            }
            tokio::time::sleep(Duration::from_secs(PROBE_EVERY_SECS)).await;
        }
    });
    Ok(Running {
        addr,
        state,
        server,
        workers,
        prober,
    })
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and working at once, as a crash would: nothing is flushed or finished.
    pub fn abort(self) {
        self.server.abort();
        self.prober.abort();
        for worker in self.workers {
            worker.abort();
        }
    }

    /// Stops as a rolling restart needs: `/readyz` answers 503 `draining` at once and requests
    /// are still served for `notice` (a load balancer's time to see it); then the listener
    /// closes, each connection ends after the request it is serving, and each worker loop
    /// after its current pass — all within `drain`, past which they are cut off. The pools
    /// (Till's, and the embedded simulator's) are closed last. Returns whether everything
    /// finished within `drain`.
    pub async fn shutdown(self, notice: Duration, drain: Duration) -> bool {
        self.state.stopping.drain();
        tokio::time::sleep(notice).await;
        self.state.stopping.stop();
        self.prober.abort();
        let deadline = tokio::time::Instant::now() + drain;
        let mut finished = true;
        for mut task in std::iter::once(self.server).chain(self.workers) {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                task.abort();
                finished = false;
            }
        }
        self.state.close_databases().await;
        finished
    }
}
