//! Shared machinery: a fresh database, the agentplane server process, pgbench,
//! an HTTP load loop, and process memory readings.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ADMIN_KEY: &str = "bench-admin-key";

/// A database created for this run and dropped at the end.
pub struct BenchDb {
    pub server_url: String,
    pub name: String,
    pub url: String,
}

pub fn with_db(url: &str, db: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    let cut = base
        .rfind('/')
        .filter(|i| *i > base.find("//").map(|j| j + 1).unwrap_or(0));
    match cut {
        Some(i) => format!("{}/{db}", &base[..i]),
        None => format!("{base}/{db}"),
    }
}

impl BenchDb {
    pub async fn create(server_url: &str) -> BenchDb {
        let name = format!("agentplane_bench_{}", std::process::id());
        let c = agentplane::db::connect(server_url, "bench")
            .await
            .expect("connect");
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await
            .expect("drop old bench database");
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create bench database");
        BenchDb {
            server_url: server_url.into(),
            url: with_db(server_url, &name),
            name,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        agentplane::db::connect(&self.url, "bench")
            .await
            .expect("connect")
    }

    pub async fn drop_db(&self) {
        if let Ok(c) = agentplane::db::connect(&self.server_url, "bench").await {
            let _ = c
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .await;
        }
    }
}

/// The agentplane binary serving `db_url` on a free loopback port.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub addr: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Server {
    pub async fn start(db_url: &str, extra_env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agentplane"));
        cmd.arg("serve")
            .env("DATABASE_URL", db_url)
            .env("AGENTPLANE_BIND", &addr)
            .env("AGENTPLANE_ADMIN_KEY", ADMIN_KEY)
            .env("AGENTPLANE_POOL_SIZE", "32")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn agentplane");
        let base = format!("http://{addr}");
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{base}/health")).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "agentplane did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Server { child, base, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stop(mut self) {
        // SIGTERM for a graceful stop, then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident memory (VmHWM) of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs pgbench with `script` for `secs` seconds on `clients` connections;
/// returns transactions per second.
pub fn pgbench(db_url: &str, script: &str, clients: usize, secs: u64) -> f64 {
    let dir = std::env::temp_dir().join(format!("agentplane-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let file = dir.join("script.sql");
    std::fs::write(&file, script).expect("write script");
    let bin = agentplane::localpg::find_bindir()
        .map(|d| d.join("pgbench"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "pgbench".into());
    let out = Command::new(bin)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
        ])
        .args(["-T", &secs.to_string(), "-f"])
        .arg(&file)
        .arg(db_url)
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "pgbench failed: {}{}",
            text,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no tps in pgbench output: {text}"))
}

/// Outcome counts of a load run.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub ok: u64,
    pub rejected: u64,
    pub failed: u64,
    pub secs: f64,
}

impl LoadResult {
    pub fn per_sec(&self) -> f64 {
        (self.ok + self.rejected) as f64 / self.secs
    }
}

/// `clients` keep-alive HTTP clients POSTing `make(worker, seq)` bodies to
/// the path it returns, as fast as answers come, for `secs` seconds. 2xx
/// counts as ok, 402/409/429 as rejected (a valid business answer), other
/// statuses as failed.
pub async fn http_load<F>(base: &str, clients: usize, secs: u64, make: F) -> LoadResult
where
    F: Fn(usize, u64) -> (String, serde_json::Value) + Send + Sync + 'static,
{
    http_load_bytes(base, clients, secs, move |w, seq| {
        let (path, body) = make(w, seq);
        let bytes = serde_json::to_vec(&body).expect("body");
        (path, bytes::Bytes::from(bytes))
    })
    .await
}

/// `http_load` with bodies already serialized (JSON): for large bodies, so
/// that the load generator, which shares the machine, does not spend its
/// time building JSON.
pub async fn http_load_bytes<F>(base: &str, clients: usize, secs: u64, make: F) -> LoadResult
where
    F: Fn(usize, u64) -> (String, bytes::Bytes) + Send + Sync + 'static,
{
    let make = Arc::new(make);
    let ok = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..clients {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        let (make, ok, rejected, failed) =
            (make.clone(), ok.clone(), rejected.clone(), failed.clone());
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while Instant::now() < until {
                let (path, body) = make(w, seq);
                seq += 1;
                let resp = client
                    .post(format!("{base}{path}"))
                    .bearer_auth(ADMIN_KEY)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body)
                    .send()
                    .await;
                match resp.map(|r| r.status().as_u16()) {
                    Ok(s) if (200..300).contains(&s) => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(402) | Ok(409) | Ok(429) => rejected.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    LoadResult {
        ok: ok.load(Ordering::Relaxed),
        rejected: rejected.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        secs: start.elapsed().as_secs_f64(),
    }
}

/// Median of a sample (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    percentile(samples, 0.5)
}

/// Linear-interpolated percentile `p` in 0..=1 (sorts in place).
pub fn percentile(samples: &mut [f64], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pos = p * (samples.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    samples[lo] + (samples[hi] - samples[lo]) * (pos - lo as f64)
}

/// The same spend load driven by wrk (C, far lighter on the shared cores
/// than an async Rust client), when wrk is installed. `lua_request` is the
/// body of wrk's `request` function.
pub fn wrk_load(base: &str, clients: usize, secs: u64, lua_request: &str) -> Option<LoadResult> {
    // wrk prints its version and exits 1: reaching the next line means it runs
    Command::new("wrk").arg("--version").output().ok()?;
    let dir = std::env::temp_dir().join(format!("agentplane-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let script = dir.join("load.lua");
    let lua = format!(
        "wrk.method = \"POST\"\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {ADMIN_KEY}\"\n\
         local ok, bad = 0, 0\n\
         request = function()\n{lua_request}\nend\n\
         done = function(summary, latency, requests)\n\
           io.write(string.format(\"WRK_RESULT %d %d %d\\n\", summary.requests, summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))\n\
         end\n"
    );
    std::fs::write(&script, lua).ok()?;
    let out = Command::new("wrk")
        .args([
            "-t",
            "2",
            "-c",
            &clients.to_string(),
            "-d",
            &format!("{secs}s"),
        ])
        .arg("-s")
        .arg(&script)
        .arg(base)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("WRK_RESULT"))?;
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let (requests, non2xx, socket_errors) = (nums.first()?, nums.get(1)?, nums.get(2)?);
    Some(LoadResult {
        ok: requests - non2xx,
        rejected: 0,
        failed: non2xx + socket_errors,
        secs: secs as f64,
    })
}
