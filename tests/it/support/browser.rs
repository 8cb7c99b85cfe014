//! A real browser for tests: headless Chromium driven over WebDriver
//! (chromedriver on a free port, a fresh profile per browser).
//!
//! Without `chromium` and `chromedriver` on the machine, [`Browser::launch`]
//! prints why it skips and answers None; with `AGENTPLANE_REQUIRE_BROWSER=1`
//! (CI) it fails instead.

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &[&str] = &["/usr/bin/chromium", "/usr/bin/chromium-browser"];
const CHROMEDRIVER: &[&str] = &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

/// Flags for a quiet, isolated headless browser that reaches no network of
/// its own (no updates, sync, field trials or QUIC probes).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,900",
];

fn first_existing(paths: &[&str]) -> Option<PathBuf> {
    paths.iter().map(PathBuf::from).find(|p| p.exists())
}

/// The browser and its driver; None (after saying so) when they are
/// missing and not required; an error when they are missing but required.
pub fn find(
    chromium: &[&str],
    driver: &[&str],
    require: bool,
) -> Result<Option<(PathBuf, PathBuf)>, String> {
    if let (Some(c), Some(d)) = (first_existing(chromium), first_existing(driver)) {
        return Ok(Some((c, d)));
    }
    let why = "chromium and chromedriver are not installed \
               (Debian: apt-get install chromium chromium-driver)";
    if require {
        return Err(format!("AGENTPLANE_REQUIRE_BROWSER=1 but {why}"));
    }
    eprintln!("SKIPPED: the browser test needs a browser: {why}");
    Ok(None)
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    driver_url: String,
    port: u16,
    session: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or None (skip) when they
    /// are not installed and the browser is not required.
    pub async fn launch() -> Option<Browser> {
        let require = std::env::var("AGENTPLANE_REQUIRE_BROWSER").as_deref() == Ok("1");
        let (chromium, driver) = match find(CHROMIUM, CHROMEDRIVER, require) {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(why) => panic!("{why}"),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let driver_url = format!("http://127.0.0.1:{port}");
        if !wait_ready(&driver_url).await {
            let _ = child.kill();
            panic!("chromedriver did not start on port {port}");
        }
        let profile = std::env::temp_dir().join(format!("agentplane-chromium-{}", uuid()));
        std::fs::create_dir_all(&profile).expect("profile dir");
        let mut args: Vec<String> = FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver_url)
            .await;
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                panic!("cannot start a Chromium session: {e}");
            }
        };
        let session = client.session_id().await.ok().flatten().unwrap_or_default();
        Some(Browser {
            client,
            driver: child,
            driver_url,
            port,
            session,
            profile,
        })
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigate");
    }

    /// Runs `script` (a function body; `return` answers) in the page.
    pub async fn js(&self, script: &str) -> Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until the expression `cond` is true in the page, or fails
    /// saying `what` after `secs` seconds.
    pub async fn wait_for(&self, cond: &str, secs: u64, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let script = format!("try {{ return !!({cond}); }} catch (e) {{ return false; }}");
        loop {
            if self.js(&script).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let body = self.js("return document.body.innerText").await;
                panic!("timed out after {secs} s waiting for {what} ({cond})\npage text:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element `css` finds; again when the page redrew it between
    /// finding and clicking (live views redraw as events arrive).
    pub async fn click(&self, css: &str) {
        for attempt in 0.. {
            let found = self.client.find(Locator::Css(css)).await;
            let result = match found {
                Ok(el) => el.click().await,
                Err(e) => Err(e),
            };
            match result {
                Ok(()) => return,
                Err(e) if attempt < 5 && e.to_string().contains("stale element") => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("click {css}: {e}"),
            }
        }
    }

    /// Sends keys to the focused element (`fantoccini::key::Key` codes
    /// included), as a keyboard user would.
    pub async fn keys(&self, text: &str) {
        self.client
            .active_element()
            .await
            .expect("a focused element")
            .send_keys(text)
            .await
            .expect("keys");
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.expect("clear");
        el.send_keys(text).await.expect("type");
    }

    /// Sets the size of the viewport-holding window (laptop or phone).
    pub async fn resize(&self, width: u32, height: u32) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
    }

    /// Saves a PNG of the page under `target/console-screenshots/`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }

    /// The browser console's entries since the last call, as
    /// `(level, message)`; chromedriver hands each entry out once.
    pub async fn console_log(&self) -> Vec<(String, String)> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let resp: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({"type": "browser"}))
            .send()
            .await
            .expect("log request")
            .json()
            .await
            .expect("log body");
        resp["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        (
                            e["level"].as_str().unwrap_or("").to_string(),
                            e["message"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails when the console logged an error or warning since the last look.
    pub async fn assert_quiet_console(&self, when: &str) {
        let bad: Vec<_> = self
            .console_log()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
            .collect();
        assert!(bad.is_empty(), "console errors {when}: {bad:#?}");
    }

    pub async fn close(mut self) {
        let _ = self.client.clone().close().await;
        self.session.clear();
    }
}

impl Drop for Browser {
    /// Also on a failed test: ends the session first (chromedriver then
    /// quits Chromium, which killing chromedriver alone would leave running).
    fn drop(&mut self) {
        if !self.session.is_empty() {
            end_session(self.port, &self.session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// `DELETE /session/{id}` without an async runtime (Drop may run while a
/// panic unwinds through one).
fn end_session(port: u16, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
}

async fn wait_ready(url: &str) -> bool {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(format!("{url}/status")).send().await {
            if let Ok(v) = r.json::<Value>().await {
                if v["value"]["ready"] == Value::Bool(true) {
                    return true;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn uuid() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    )
}
