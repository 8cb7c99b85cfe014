//! `cargo bench --bench load`: starts agentplane on a fresh database, loads
//! it, and prints each figure as a ratio against a baseline measured in
//! the same run on the same machine. See docs/performance.md.
//!
//! Knobs (environment): DATABASE_URL (the server to create the bench
//! database on; default the machine's 127.0.0.1:5432), BENCH_SECS (seconds
//! per throughput phase, default 10), BENCH_CLIENTS (HTTP clients, default
//! 32), BENCH_RECORDS (usage records for the usage totals reads, default 10,000,000),
//! BENCH_REPRICE_RECORDS (usage records the reprice part loads when the
//! records part did not run, default 10,000,000),
//! BENCH_ONLY (comma-separated parts to run: spend = the spend figures and
//! server memory, ingest = batch usage ingest (plain, and with the token
//! breakdown), feed = feed latency, records = the batch function from SQL and
//! the usage totals reads, reprice = repricing every record under ingest,
//! webhooks = webhook throughput, lag and spend with endpoints; default all),
//! BENCH_CITUS_WORKERS (the workers' host:port, comma-separated, when
//! DATABASE_URL is a Citus coordinator: the bench database is distributed).

mod citus;
mod feed;
mod harness;
mod reprice;
mod setup;
mod webhooks;

use harness::*;
use std::time::Instant;

pub struct Knobs {
    pub secs: u64,
    pub clients: usize,
    pub records: u64,
    pub reprice_records: u64,
    pub only: Option<String>,
}

impl Knobs {
    /// Whether BENCH_ONLY selects the part `part` (every part when unset).
    fn runs(&self, part: &str) -> bool {
        self.only
            .as_deref()
            .is_none_or(|only| only.split(',').any(|p| p.trim() == part))
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One line of the result table.
struct Row {
    figure: &'static str,
    measured: String,
    baseline: String,
    ratio: f64,
    target: &'static str,
    pass: bool,
}

fn main() {
    // `cargo bench` passes --bench; nothing else to parse.
    let knobs = Knobs {
        secs: env_num("BENCH_SECS", 10),
        clients: env_num("BENCH_CLIENTS", 32) as usize,
        records: env_num("BENCH_RECORDS", 10_000_000),
        reprice_records: env_num("BENCH_REPRICE_RECORDS", 10_000_000),
        only: std::env::var("BENCH_ONLY").ok(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(knobs));
}

async fn run(k: Knobs) {
    let server_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = BenchDb::create(&server_url).await;
    if let Some(workers) = citus::workers() {
        citus::prepare(&db, &workers).await;
        eprintln!("distributed over {}", workers.join(", "));
    }
    eprintln!(
        "bench database {} ({}s phases, {} clients)",
        db.name, k.secs, k.clients
    );
    let mut rows = Vec::new();

    // Server A: migrates the database, then the spend figures up to one hot user.
    let mut server = Server::start(&db.url, &[]).await;
    if k.runs("spend") {
        server = spend_figures(&k, &db, server, &mut rows).await;
    }

    let mut copy_rate = None;
    if k.runs("ingest") {
        copy_rate = Some(ingest_figure(&k, &db, &server, &mut rows).await);
    }
    if k.runs("feed") {
        feed_figure(&k, &db, &server, &mut rows).await;
    }
    if k.runs("webhooks") {
        webhook_figures(&k, &db, &server, &mut rows).await;
    }
    if k.runs("records") {
        records_figures(&k, &db, &server, copy_rate, &mut rows).await;
    }
    if k.runs("reprice") {
        reprice_figures(&k, &db, &server, &mut rows).await;
    }
    server.stop();
    db.drop_db().await;
    print_table(&k, &rows);
}

/// The spend figures and server memory. Returns the server the later figures
/// use (the one started for spend with subscribers).
async fn spend_figures(k: &Knobs, db: &BenchDb, server: Server, rows: &mut Vec<Row>) -> Server {
    setup::credits(db).await;
    setup::minimal_spend(db).await;

    // Spend function overhead: the spend function vs a minimal spend, both
    // under pgbench, alternated twice (best of each) to damp the noise of a
    // shared machine.
    let spend_script = "\\set u random(1, 10000)\n\
        SELECT * FROM credits.spend('bu' || :u, 'bench-block', '{\"credentials\":{\"provider\":\"platform\"}}');\n";
    let minimal_script = "\\set u random(1, 10000)\nSELECT bench.min_spend('bu' || :u, 1);\n";
    let (mut pg_minimal, mut pg_spend) = (0f64, 0f64);
    // A checkpoint before each run, so that neither pays for the other's
    // dirty pages.
    let checkpoint = || async {
        db.client()
            .await
            .batch_execute("CHECKPOINT")
            .await
            .expect("checkpoint")
    };
    for _ in 0..2 {
        checkpoint().await;
        pg_minimal = pg_minimal.max(pgbench(&db.url, minimal_script, k.clients, k.secs));
        checkpoint().await;
        pg_spend = pg_spend.max(pgbench(&db.url, spend_script, k.clients, k.secs));
    }
    rows.push(Row {
        figure: "spend function overhead (pgbench)",
        measured: format!("{pg_spend:.0} tx/s"),
        baseline: format!("{pg_minimal:.0} tx/s"),
        ratio: pg_spend / pg_minimal,
        target: ">= 0.7",
        pass: pg_spend / pg_minimal >= 0.7,
    });

    // Spend over HTTP, 10,000 users, vs pgbench on the spend function.
    let http = spend_load(&server.base, k.clients, k.secs, false).await;
    let http_rate = http.per_sec();
    rows.push(Row {
        figure: "spend over HTTP",
        measured: format!("{http_rate:.0} req/s ({} failed)", http.failed),
        baseline: format!("{pg_spend:.0} tx/s"),
        ratio: http_rate / pg_spend,
        target: ">= 0.6",
        pass: http_rate / pg_spend >= 0.6 && http.failed == 0,
    });

    // One hot user vs spend over HTTP; then the ledger must still add up,
    // and a user with 1,000 credits under the same contention never overdraws.
    let hot = spend_load(&server.base, k.clients, k.secs, true).await;
    let (consistent, detail) = setup::hot_user_consistent(db).await;
    let (no_overdraft, probe) = setup::overdraft_probe(db, &server.base).await;
    rows.push(Row {
        figure: "one hot user",
        measured: format!("{:.0} req/s; {detail}; {probe}", hot.per_sec()),
        baseline: format!("{http_rate:.0} req/s"),
        ratio: hot.per_sec() / http_rate,
        target: ">= 0.4, no overdraft, ledger = balance",
        pass: hot.per_sec() / http_rate >= 0.4 && consistent && no_overdraft && hot.failed == 0,
    });
    server.stop();

    // Spend with subscribers and server memory: a fresh server (so its peak
    // memory is this load's), the same spend load without and with 100
    // subscribers connected, alternated twice on this one server (best of
    // each), so that both sides meet the same database and the same moment
    // of a shared machine.
    let server = Server::start(&db.url, &[]).await;
    let (mut without_feed, mut with_feed, mut received, mut failed) = (0f64, 0f64, 0, 0);
    for _ in 0..2 {
        checkpoint().await;
        let alone = spend_load(&server.base, k.clients, k.secs, false).await;
        without_feed = without_feed.max(alone.per_sec());
        checkpoint().await;
        let subscribers =
            feed::Subscribers::connect(&server.addr, 100, feed::Filter::OneUserEach).await;
        let watched = spend_load(&server.base, k.clients, k.secs, false).await;
        received += subscribers.stop().await;
        with_feed = with_feed.max(watched.per_sec());
        failed += alone.failed + watched.failed;
    }
    let rss = peak_rss_mib(server.pid()).unwrap_or(f64::NAN);
    rows.push(Row {
        figure: "spend with subscribers",
        measured: format!("{with_feed:.0} req/s ({received} events pushed)"),
        baseline: format!("{without_feed:.0} req/s"),
        ratio: with_feed / without_feed,
        target: ">= 0.85",
        pass: with_feed / without_feed >= 0.85 && failed == 0,
    });
    rows.push(Row {
        figure: "server memory (peak RSS)",
        measured: format!("{rss:.1} MiB"),
        baseline: "-".into(),
        ratio: f64::NAN,
        target: "report",
        pass: rss.is_finite(),
    });
    server
}

/// Batch usage ingest; returns the COPY baseline (rows/s).
async fn ingest_figure(k: &Knobs, db: &BenchDb, server: &Server, rows: &mut Vec<Row>) -> f64 {
    // Usage batch ingest vs COPY of the same rows.
    let (api_rate, copy_rate) = setup::usage_ingest(db, &server.base, k.secs, false).await;
    rows.push(Row {
        figure: "batch usage ingest",
        measured: format!("{api_rate:.0} records/s"),
        baseline: format!("{copy_rate:.0} rows/s"),
        ratio: api_rate / copy_rate,
        target: ">= 0.3 and >= 50k/s",
        pass: api_rate / copy_rate >= 0.3 && api_rate >= 50_000.0,
    });
    // The same with every record giving the token breakdown (COPY copies
    // the three counts too).
    let (b_rate, b_copy) = setup::usage_ingest(db, &server.base, k.secs, true).await;
    rows.push(Row {
        figure: "batch usage ingest, breakdown",
        measured: format!("{b_rate:.0} records/s"),
        baseline: format!("{b_copy:.0} rows/s"),
        ratio: b_rate / b_copy,
        target: ">= 0.3 and >= 50k/s",
        pass: b_rate / b_copy >= 0.3 && b_rate >= 50_000.0,
    });
    copy_rate
}

/// Repricing every record while ingest runs.
async fn reprice_figures(k: &Knobs, db: &BenchDb, server: &Server, rows: &mut Vec<Row>) {
    let f = reprice::reprice(db, &server.base, k.reprice_records).await;
    let rate = f.records as f64 / f.secs;
    rows.push(Row {
        figure: "reprice",
        measured: format!(
            "{rate:.0} records/s ({} records, {} changed, {:.1}s)",
            f.records, f.changed, f.secs
        ),
        baseline: "diagnostic".into(),
        ratio: f64::NAN,
        target: "diagnostic; every record repriced",
        // (an error answer, a timeout say, reprices nothing)
        pass: f.records > 0,
    });
    rows.push(Row {
        figure: "ingest during reprice",
        measured: format!(
            "p50 {:.0} ms, longest {:.0} ms",
            f.during_p50_ms, f.during_max_ms
        ),
        baseline: format!("p50 {:.0} ms before", f.before_p50_ms),
        ratio: f.during_p50_ms / f.before_p50_ms,
        target: "diagnostic",
        pass: true,
    });
}

async fn feed_figure(k: &Knobs, db: &BenchDb, server: &Server, rows: &mut Vec<Row>) {
    // Feed latency at 1,000 events/s with 100 subscribers.
    let (p50, p99, delivered) = feed::latency(db, &server.addr, k.secs, feed::Via::Ws).await;
    rows.push(Row {
        figure: "feed latency",
        measured: format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        baseline: format!("{delivered} deliveries"),
        ratio: f64::NAN,
        target: "p99 < 50 ms",
        pass: p99 < 50.0,
    });
    // The same over Server-Sent Events, against the WebSocket p99 just measured.
    let (s50, s99, sse_delivered) = feed::latency(db, &server.addr, k.secs, feed::Via::Sse).await;
    rows.push(Row {
        figure: "SSE feed latency",
        measured: format!("p50 {s50:.1} ms, p99 {s99:.1} ms ({sse_delivered} deliveries)"),
        baseline: format!("WebSocket p99 {p99:.1} ms"),
        ratio: s99 / p99,
        target: "p99 < 50 ms",
        pass: s99 < 50.0,
    });
}

/// Webhook throughput and lag, and the spend load with 10 endpoints active
/// vs none (alternated twice on this server, best of each).
async fn webhook_figures(k: &Knobs, db: &BenchDb, server: &Server, rows: &mut Vec<Row>) {
    if !k.runs("spend") {
        setup::credits(db).await;
    }
    let (mut without, mut with, mut delivered, mut failed) = (0f64, 0f64, 0u64, 0);
    for _ in 0..2 {
        let alone = spend_load(&server.base, k.clients, k.secs, false).await;
        without = without.max(alone.per_sec());
        let (rx, ids) = webhooks::spend_endpoints(&server.base).await;
        let hooked = spend_load(&server.base, k.clients, k.secs, false).await;
        with = with.max(hooked.per_sec());
        delivered += webhooks::remove(&server.base, rx, ids).await;
        failed += alone.failed + hooked.failed;
    }
    rows.push(Row {
        figure: "spend with 10 webhook endpoints",
        measured: format!("{with:.0} req/s ({delivered} deliveries)"),
        baseline: format!("{without:.0} req/s"),
        ratio: with / without,
        target: ">= 0.85",
        pass: with / without >= 0.85 && failed == 0,
    });
    let (rate, raw, p50, p99, samples) =
        webhooks::throughput_and_lag(db, &server.base, k.secs).await;
    rows.push(Row {
        figure: "webhook throughput (10 endpoints)",
        measured: format!("{rate:.0} deliveries/s"),
        baseline: format!("{raw:.0} plain POSTs/s"),
        ratio: rate / raw,
        target: ">= 2,000/s",
        pass: rate >= 2000.0,
    });
    rows.push(Row {
        figure: "webhook lag (commit to delivery)",
        measured: format!("p50 {p50:.1} ms, p99 {p99:.1} ms"),
        baseline: format!("{samples} deliveries"),
        ratio: f64::NAN,
        target: "p99 < 250 ms",
        pass: p99 < 250.0,
    });
}

/// The usage totals reads (and the batch function from SQL, when batch usage
/// ingest ran: its COPY rate is the baseline).
async fn records_figures(
    k: &Knobs,
    db: &BenchDb,
    server: &Server,
    copy_rate: Option<f64>,
    rows: &mut Vec<Row>,
) {
    // Totals over many usage records vs the naive aggregate.
    let started = Instant::now();
    setup::load_usage_records(db, k.records).await;
    let load_secs = started.elapsed().as_secs_f64();
    setup::analyze_usage(db).await;
    eprintln!("loaded {} usage records in {load_secs:.0}s", k.records);
    // Where batch ingest's time goes: the same batch function called from SQL
    // (no HTTP, no JSON), 10,000 records a call on two connections.
    let sql_rate = k.records as f64 / load_secs;
    if let Some(copy_rate) = copy_rate {
        rows.push(Row {
            figure: "batch function from SQL",
            measured: format!("{sql_rate:.0} records/s"),
            baseline: format!("{copy_rate:.0} rows/s"),
            ratio: sql_rate / copy_rate,
            target: "diagnostic",
            pass: true,
        });
    }
    for (figure, api_path, naive_sql) in [
        (
            "usage overview read",
            "/api/v1/usage",
            "SELECT count(*), sum(prompt_tokens + completion_tokens), sum(cost) FROM usage.records",
        ),
        (
            "agent totals read",
            "/api/v1/usage/agents/agent-3",
            "SELECT count(*), sum(prompt_tokens + completion_tokens), sum(cost) FROM usage.records WHERE agent_id = 'agent-3'",
        ),
    ] {
        let api_ms = setup::median_get_ms(&server.base, api_path, 51).await;
        let naive_ms = setup::median_sql_ms(db, naive_sql, 5).await;
        rows.push(Row {
            figure,
            measured: format!("{api_ms:.2} ms median"),
            baseline: format!("{naive_ms:.0} ms median"),
            ratio: naive_ms / api_ms,
            target: ">= 100x and < 50 ms",
            pass: naive_ms / api_ms >= 100.0 && api_ms < 50.0,
        });
    }
}

/// The spend load of spend over HTTP, one hot user and spend with
/// subscribers: each request spends on a random
/// one of the 10,000 users (or all on the hot user). Driven by wrk when it
/// is installed, else by the Rust client.
async fn spend_load(base: &str, clients: usize, secs: u64, hot: bool) -> LoadResult {
    let body =
        r#"{\"blockId\":\"bench-block\",\"input\":{\"credentials\":{\"provider\":\"platform\"}}}"#;
    let user = if hot {
        "\"hot\"".to_string()
    } else {
        "\"bu\" .. math.random(1, 10000)".to_string()
    };
    let lua = format!(
        "  return wrk.format(nil, \"/api/v1/users/\" .. {user} .. \"/credits/spend\", nil, \"{body}\")"
    );
    let (base_owned, lua_owned) = (base.to_string(), lua.clone());
    let via_wrk =
        tokio::task::spawn_blocking(move || wrk_load(&base_owned, clients, secs, &lua_owned))
            .await
            .ok()
            .flatten();
    if let Some(result) = via_wrk {
        return result;
    }
    http_load(base, clients, secs, move |w, seq| {
        let user = if hot {
            "hot".to_string()
        } else {
            // a cheap deterministic spread over the 10,000 users
            let x = (w as u64).wrapping_mul(2_654_435_761).wrapping_add(seq.wrapping_mul(40_503));
            format!("bu{}", x % 10_000 + 1)
        };
        (
            format!("/api/v1/users/{user}/credits/spend"),
            serde_json::json!({"blockId": "bench-block", "input": {"credentials": {"provider": "platform"}}}),
        )
    })
    .await
}

fn print_table(k: &Knobs, rows: &[Row]) {
    println!();
    println!(
        "agentplane benchmark — {} cores, {}s phases, {} HTTP clients, {} usage records",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        k.secs,
        k.clients,
        k.records
    );
    println!("| figure | measured | baseline | ratio | target | met |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        let ratio = if r.ratio.is_finite() {
            format!("{:.2}", r.ratio)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            r.figure,
            r.measured,
            r.baseline,
            ratio,
            r.target,
            if r.pass { "yes" } else { "NO" }
        );
    }
}
