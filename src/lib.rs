//! Till, a checkout engine: the library behind the `till` binary. `serve` starts the API and
//! its workers; everything else is organised by capability (see ARCHITECTURE.md).

pub mod bench;
pub mod checkout;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod failpoint;
pub mod http;
pub mod ids;
pub mod inventory;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod orders;
pub mod payments;
pub mod state;
pub mod verify;

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
    workers: Option<JoinHandle<()>>,
}

/// Whether `start` runs the background workers (tests drive them by hand instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    Run,
    Manual,
}

/// Opens the database, binds the listener and starts serving (and the workers).
pub async fn start(cfg: &Config, clock: Clock, workers: Workers) -> anyhow::Result<Running> {
    let state = AppState::open(cfg, clock).await?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("bind {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    state.sim.set_till_url(format!("http://{addr}"));
    let app = http::app(state.clone());
    let server = tokio::spawn(async move {
        // The peer address keys the rate limiter's bucket for unauthenticated requests.
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(error = %err, "server stopped");
        }
    });
    let workers = (workers == Workers::Run).then(|| checkout::workers::spawn(state.clone()));
    Ok(Running {
        addr,
        state,
        server,
        workers,
    })
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and working at once, as a crash would: nothing is flushed or finished.
    pub fn abort(self) {
        self.server.abort();
        if let Some(workers) = self.workers {
            workers.abort();
        }
    }

    /// Waits until the server task ends (it runs until the process stops).
    pub async fn wait(self) {
        let _ = self.server.await;
    }
}
