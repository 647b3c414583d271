//! `till bench`: a load generator over HTTP. It targets a running Till (`--url`) or starts
//! one in-process on a fresh database, runs a scenario bounded by count and time, shows a
//! progress bar, and reports throughput, latency percentiles, outcomes and `till verify`
//! (and, given the raw baseline's figure, Till's ratio to it). Its report is the only thing it
//! writes to stdout. The buyers themselves are in `buyers.rs`. Just over 400 lines: the run
//! and the report it prints are one piece.

mod buyers;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::ids::random_token;
use crate::{start, verify, Workers};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Create order → pay by card → confirmed, over many SKUs.
    Checkout,
    /// Many buyers at once for one hot SKU with little stock; the winners pay.
    FlashSale,
    /// `--count` requests, `--concurrency` at a time, each answered without the database
    /// (`GET /healthz`): what Till's HTTP stack alone answers on this machine. With as many
    /// at once as a flash sale's buyers, the ceiling over its throughput and the floor under
    /// its latency; with a checkout's 32, the ceiling over checkouts (four requests each).
    Floor,
    /// Checkouts as shoppers make them: cards, UPI and wallets, some declined, some through
    /// 3-D Secure, some carts abandoned and left to expire (see `buyers::Shopper`).
    Mix,
}

#[derive(Args, Clone, Debug)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "checkout")]
    pub scenario: Scenario,
    /// A running Till to load; without it, one is started in-process on `--database-url`.
    #[arg(long)]
    pub url: Option<String>,
    /// The API key of `--url`.
    #[arg(long, env = "TILL_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Database for the in-process Till, and for the final verify (a fresh SQLite file when
    /// neither this nor `--url` is given).
    #[arg(long, env = "TILL_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Checkouts (checkout) or buyers (flash-sale) to run at most.
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// Stop starting new work after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub duration_secs: u64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Checkout: how many SKUs the orders spread over.
    #[arg(long, default_value_t = 100)]
    pub skus: usize,
    /// Flash sale: units of the hot SKU.
    #[arg(long, default_value_t = 100)]
    pub stock: i64,
    /// Print the result as JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The raw database's figure for the same work (per second), as `bench/run.sh` measures
    /// it; the report then gives Till's ratio to it.
    #[arg(long)]
    pub baseline_per_sec: Option<f64>,
    /// The in-process Till's hold TTL; unset, 900 s, but 10 s for `mix`, whose abandoned
    /// carts are watched until they expire.
    #[arg(long)]
    pub hold_ttl_secs: Option<i64>,
}

/// The in-process Till's hold TTL in the mixed scenario: short enough to watch the abandoned
/// carts expire, long enough for every webhook-completed payment to land first.
const MIX_HOLD_TTL_SECS: i64 = 10;

/// The longest a single bench request may take before it counts as an error.
const REQUEST_TIMEOUT_SECS: u64 = 60;

/// How often the progress bar redraws.
const PROGRESS_EVERY_MS: u64 = 200;

pub(crate) struct Target {
    url: String,
    key: String,
    http: reqwest::Client,
}

impl Target {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        idem: Option<String>,
    ) -> Result<(u16, Value), String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(&self.key);
        if !body.is_null() {
            req = req.json(&body);
        }
        if let Some(key) = idem {
            req = req.header("Idempotency-Key", key);
        }
        let resp = req.send().await.map_err(|e| format!("transport: {e}"))?;
        let status = resp.status().as_u16();
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        Ok((status, body))
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let hold_ttl_secs = args.hold_ttl_secs.or(match (args.scenario, &args.url) {
        (Scenario::Mix, None) => Some(MIX_HOLD_TTL_SECS),
        _ => None,
    });
    let (url, key, server, verify_url) = match &args.url {
        Some(url) => {
            let key = args
                .api_key
                .clone()
                .context("--url needs --api-key (or TILL_API_KEY)")?;
            (
                url.trim_end_matches('/').to_string(),
                key,
                None,
                args.database_url.clone(),
            )
        }
        None => {
            let mut cfg = Config::defaults();
            let db_url = args.database_url.clone().unwrap_or_else(|| {
                format!(
                    "sqlite://{}",
                    std::env::temp_dir()
                        .join(format!("till-bench-{}.db", random_token(8)))
                        .display()
                )
            });
            cfg.database_url = db_url.clone();
            cfg.listen = "127.0.0.1:0".into();
            let key = format!("bench_{}", random_token(24));
            cfg.api_key = Some(key.clone());
            if let Some(ttl) = hold_ttl_secs {
                cfg.hold_ttl_secs = ttl;
            }
            let running = start(&cfg, Clock::default(), Workers::Run).await?;
            (running.url(), key, Some(running), Some(db_url))
        }
    };
    let http = crate::tls::client(Duration::from_secs(REQUEST_TIMEOUT_SECS));
    let target = Arc::new(Target { url, key, http });
    let run_tag = random_token(6);
    let skus: Vec<String> = match args.scenario {
        Scenario::Checkout | Scenario::Mix => (0..args.skus.max(1))
            .map(|i| format!("BENCH-{run_tag}-{i}"))
            .collect(),
        Scenario::FlashSale | Scenario::Floor => vec![format!("HOT-{run_tag}")],
    };
    let stock_each = match args.scenario {
        Scenario::Checkout | Scenario::Mix => (args.count / skus.len() + 1) as i64 * 2,
        Scenario::FlashSale | Scenario::Floor => args.stock,
    };
    for sku in &skus {
        let (s, b) = target
            .call(
                reqwest::Method::PUT,
                &format!("/v1/products/{sku}"),
                json!({"name": sku, "price": {"amount": 49900, "currency": "INR"}}),
                None,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(s == 200, "creating {sku}: {s} {b}");
        let (s, b) = target
            .call(
                reqwest::Method::PUT,
                &format!("/v1/inventory/{sku}/warehouses/bench"),
                json!({"on_hand": stock_each}),
                None,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(s == 200, "stocking {sku}: {s} {b}");
    }

    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::<(Duration, String)>::with_capacity(
        args.count,
    )));
    let abandoned = Arc::new(Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(args.duration_secs);
    let concurrency = match args.scenario {
        Scenario::Checkout | Scenario::Mix | Scenario::Floor => args.concurrency.max(1),
        // Every buyer arrives at once: that is what makes it a flash sale.
        Scenario::FlashSale => args.count.max(1),
    };
    let finished = Arc::new(AtomicBool::new(false));
    let progress = tokio::spawn(progress_bar(
        done.clone(),
        args.count,
        finished.clone(),
        args.json,
    ));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (target, next, done, samples, skus, abandoned) = (
            target.clone(),
            next.clone(),
            done.clone(),
            samples.clone(),
            skus.clone(),
            abandoned.clone(),
        );
        let (count, scenario) = (args.count, args.scenario);
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count || Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let sku = &skus[n % skus.len()];
                let outcome = match scenario {
                    Scenario::Mix => {
                        let (outcome, left) = buyers::mix_once(&target, sku, n).await;
                        if let Some(id) = left {
                            lock(&abandoned).push(id);
                        }
                        outcome
                    }
                    Scenario::Floor => buyers::floor_once(&target).await,
                    Scenario::Checkout | Scenario::FlashSale => {
                        buyers::checkout_once(&target, sku).await
                    }
                };
                lock(&samples).push((t0.elapsed(), outcome));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let elapsed = started.elapsed();
    finished.store(true, Ordering::Relaxed);
    let _ = progress.await;

    // The abandoned carts must expire (the expiry worker's work), outside the timed run.
    let abandoned = std::mem::take(&mut *lock(&abandoned));
    let expired = match hold_ttl_secs {
        Some(ttl) if !abandoned.is_empty() => {
            Some(buyers::watch_expiry(&target, &abandoned, ttl).await)
        }
        _ => None,
    };
    // Let the workers finish anything asynchronous before checking the invariants.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let verify_result = match &verify_url {
        Some(url) => {
            let db = Db::connect(url, 2).await?;
            let report = verify::check(&db).await?;
            Some(report)
        }
        None => None,
    };
    let samples = std::mem::take(&mut *lock(&samples));
    let mut summary = summarize(&args, &samples, elapsed, verify_result.as_ref());
    if let Some(expired) = expired {
        summary["abandoned_expired"] = json!({"abandoned": abandoned.len(), "expired": expired});
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary));
        if let Some(report) = &verify_result {
            print!("{}", report.render());
        }
    }
    if let Some(running) = server {
        running.abort();
    }
    Ok(())
}

async fn progress_bar(
    done: Arc<AtomicUsize>,
    total: usize,
    finished: Arc<AtomicBool>,
    quiet: bool,
) {
    let started = Instant::now();
    const WIDTH: usize = 30;
    loop {
        let n = done.load(Ordering::Relaxed);
        if !quiet {
            let filled = (n * WIDTH)
                .checked_div(total)
                .map_or(WIDTH, |f| f.min(WIDTH));
            let rate = n as f64 / started.elapsed().as_secs_f64().max(0.001);
            eprint!(
                "\r[{}{}] {n}/{total} {rate:.0}/s ",
                "#".repeat(filled),
                " ".repeat(WIDTH - filled)
            );
            let _ = std::io::stderr().flush();
        }
        if finished.load(Ordering::Relaxed) {
            if !quiet {
                eprintln!();
            }
            return;
        }
        tokio::time::sleep(Duration::from_millis(PROGRESS_EVERY_MS)).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn percentile(sorted: &[Duration], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[idx].as_secs_f64() * 1000.0
}

fn summarize(
    args: &BenchArgs,
    samples: &[(Duration, String)],
    elapsed: Duration,
    report: Option<&verify::Report>,
) -> Value {
    let mut latencies: Vec<Duration> = samples.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, outcome) in samples {
        *outcomes.entry(outcome.as_str()).or_default() += 1;
    }
    let confirmed = outcomes.get("confirmed").copied().unwrap_or(0);
    let secs = elapsed.as_secs_f64().max(0.001);
    // The figure set beside the raw baseline: a flash sale's buyers answered (its baseline is
    // one conditional update per buyer), otherwise checkouts confirmed.
    let measured = match args.scenario {
        Scenario::FlashSale | Scenario::Floor => samples.len() as f64 / secs,
        Scenario::Checkout | Scenario::Mix => confirmed as f64 / secs,
    };
    json!({
        "scenario": format!("{:?}", args.scenario),
        "requests": samples.len(),
        "elapsed_secs": elapsed.as_secs_f64(),
        "throughput_per_sec": samples.len() as f64 / elapsed.as_secs_f64().max(0.001),
        "confirmed_per_sec": confirmed as f64 / elapsed.as_secs_f64().max(0.001),
        "latency_ms": {
            "p50": percentile(&latencies, 50),
            "p90": percentile(&latencies, 90),
            "p99": percentile(&latencies, 99),
            "max": latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
        },
        "outcomes": outcomes,
        "verify": report.map(|r| if r.is_clean() { "clean" } else { "BROKEN" }),
        "baseline_per_sec": args.baseline_per_sec,
        "ratio_to_baseline": args.baseline_per_sec.filter(|b| *b > 0.0).map(|b| measured / b),
    })
}

fn render(s: &Value) -> String {
    let l = &s["latency_ms"];
    let mut out = format!(
        "scenario {}: {} in {:.2}s -> {:.1}/s ({:.1} confirmed/s)\nlatency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}\noutcomes:\n",
        s["scenario"].as_str().unwrap_or("?"),
        s["requests"],
        s["elapsed_secs"].as_f64().unwrap_or(0.0),
        s["throughput_per_sec"].as_f64().unwrap_or(0.0),
        s["confirmed_per_sec"].as_f64().unwrap_or(0.0),
        l["p50"].as_f64().unwrap_or(0.0),
        l["p90"].as_f64().unwrap_or(0.0),
        l["p99"].as_f64().unwrap_or(0.0),
        l["max"].as_f64().unwrap_or(0.0),
    );
    if let Some(map) = s["outcomes"].as_object() {
        for (k, v) in map {
            out.push_str(&format!("  {k}: {v}\n"));
        }
    }
    if let Some(ratio) = s["ratio_to_baseline"].as_f64() {
        out.push_str(&format!(
            "{ratio:.2}x the raw baseline's {:.0}/s\n",
            s["baseline_per_sec"].as_f64().unwrap_or(0.0)
        ));
    }
    out.push_str(&format!(
        "verify: {}\n",
        s["verify"].as_str().unwrap_or("skipped (no database url)")
    ));
    out
}
