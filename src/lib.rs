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
pub mod notify;
pub mod orders;
pub mod payments;
pub mod pricing;
pub mod relay;
pub mod state;
pub mod timeline;
pub mod tls;
pub mod verify;
pub mod web;

use std::net::SocketAddr;

use anyhow::Context;
use tokio::task::JoinHandle;

pub use clock::Clock;
pub use config::Config;
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
    let app = http::app(state.clone());
    let limits = http::serve::Limits {
        read_timeout: state.read_timeout,
        max_connections: cfg.max_connections,
    };
    let server = tokio::spawn(http::serve::serve(listener, app, limits));
    let workers = match workers {
        Workers::Run => {
            let mut all = relay::spawn(&state);
            all.push(checkout::workers::spawn(state.clone()));
            all
        }
        Workers::Manual => Vec::new(),
    };
    let probed = state.clone();
    let prober = tokio::spawn(async move {
        loop {
            probed.probe_gateways().await;
            if let Some(broker) = &probed.amqp {
                relay::amqp::probe(broker).await;
            }
            tokio::time::sleep(std::time::Duration::from_secs(PROBE_EVERY_SECS)).await;
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

    /// Waits until the server task ends (it runs until the process stops).
    pub async fn wait(self) {
        let _ = self.server.await;
    }
}
