//! The `till` binary: parses the command line and hands over to the library.

use std::time::Duration;

use clap::{Parser, Subcommand};
use till::{Clock, Config, Workers};

/// Small allocations come and go by the thousand in every request (JSON, headers, rows):
/// mimalloc serves them from per-thread pages, where glibc's malloc took a sixth of the
/// server's CPU in the checkout's profile (README, under `till bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "till",
    version,
    about = "A checkout engine: stock holds, payments, confirmed orders"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API and run the workers (or one of them: `--role api|worker`); SIGTERM drains.
    Serve(Config),
    /// Apply database migrations and exit.
    Migrate(DbArgs),
    /// Check a database against Till's invariants (read-only); exit status 1 if any is broken.
    Verify(DbArgs),
    /// Compare the gateways' payments with Till's and repair: refund captures no paid order
    /// keeps, capture paid orders' missing captures; prints what it found and did.
    Reconcile(Config),
    /// Run the gateway simulator as a server of its own (Stripe and Razorpay protocols).
    GatewaySim(till_gateway_sim::server::GatewaySimArgs),
    /// Load a running Till (or one it starts) and report throughput and latency.
    Bench(till::bench::BenchArgs),
}

/// The database a maintenance command works on, found the same way `serve` finds it.
#[derive(clap::Args)]
struct DbArgs {
    /// `sqlite://PATH` or `postgres://…`.
    #[arg(long, env = "TILL_DATABASE_URL", default_value = "sqlite://till.db")]
    database_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        // stdout is for what a command prints (the generated API key, reports).
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve(cfg) => {
            let running = till::start(&cfg, Clock::default(), Workers::Run).await?;
            tracing::info!(addr = %running.addr, role = ?cfg.role, database = %till::config::redact(&cfg.database_url), "till is serving");
            shutdown_signal().await;
            tracing::info!("draining: /readyz answers 503, in-flight requests and passes finish");
            let notice = Duration::from_millis(cfg.drain_notice_ms);
            let drain = Duration::from_secs(cfg.drain_secs);
            // A second signal stops at once.
            tokio::select! {
                finished = running.shutdown(notice, drain) => match finished {
                    true => tracing::info!("drained; stopped"),
                    false => tracing::warn!(drain_secs = cfg.drain_secs, "drain time ran out; stopped with work cut off"),
                },
                _ = shutdown_signal() => tracing::warn!("second signal: stopped without draining"),
            }
        }
        Command::Migrate(args) => {
            let db = till::db::Db::connect(&args.database_url, 1).await?;
            db.migrate().await?;
            println!("migrations applied");
        }
        Command::Bench(args) => till::bench::run(args).await?,
        Command::GatewaySim(args) => till_gateway_sim::server::run(args).await?,
        Command::Reconcile(mut cfg) => {
            // The embedded simulator's endpoints need a listener; no workers run.
            cfg.listen = "127.0.0.1:0".into();
            let running = till::start(&cfg, Clock::default(), Workers::Manual).await?;
            let findings = till::checkout::reconcile::reconcile(
                &running.state,
                till::checkout::reconcile::Scope::Everything,
            )
            .await?;
            print!("{}", findings.render());
            running.abort();
            // Something it could neither check nor repair needs a person (or a retry).
            if findings.flagged > 0 {
                std::process::exit(2);
            }
        }
        Command::Verify(args) => {
            let db = till::db::Db::connect(&args.database_url, 2).await?;
            let report = till::verify::check(&db).await?;
            print!("{}", report.render());
            if !report.is_clean() {
                std::process::exit(1);
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
