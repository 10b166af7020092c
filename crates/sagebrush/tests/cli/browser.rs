//! A real browser for the dashboard tests: Debian's headless Chromium driven through its
//! chromedriver (WebDriver, with fantoccini), started by each test and stopped with it.
//! Screenshots go to `target/dashboard-screenshots/`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

/// The two sizes every page is shot at: a laptop and a phone.
pub const LAPTOP: (u32, u32) = (1366, 768);
pub const PHONE: (u32, u32) = (390, 844);

pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium at the laptop size; fails (never skips) when
    /// they are not installed.
    pub fn start() -> Browser {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let driver = Command::new(driver_path())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver: install Debian's chromium and chromium-driver (the test script does)");
        let profile = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let args = serde_json::json!([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            format!("--window-size={},{}", LAPTOP.0, LAPTOP.1),
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        let mut capabilities = serde_json::Map::new();
        capabilities
            .insert("goog:chromeOptions".into(), serde_json::json!({ "args": args, "binary": chromium_path() }));
        let url = format!("http://127.0.0.1:{port}");
        let client = runtime.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let connector = hyper_util::client::legacy::connect::HttpConnector::new();
                match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&url).await {
                    Ok(client) => return client,
                    Err(e) if Instant::now() > deadline => panic!("chromedriver did not start a browser: {e}"),
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Browser { runtime, client: Some(client), driver, _profile: profile }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("browser open")
    }

    pub fn goto(&self, url: &str) {
        self.runtime.block_on(self.client().goto(url)).unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub fn url(&self) -> String {
        self.runtime.block_on(self.client().current_url()).unwrap().to_string()
    }

    /// The text of the first element `css` selects, or None.
    pub fn text(&self, css: &str) -> Option<String> {
        self.runtime.block_on(async {
            let element = self.client().find(Locator::Css(css)).await.ok()?;
            element.text().await.ok()
        })
    }

    /// How many elements `css` selects.
    pub fn count(&self, css: &str) -> usize {
        self.runtime.block_on(self.client().find_all(Locator::Css(css))).map_or(0, |all| all.len())
    }

    /// Waits until the first element `css` selects has text for which `accept` holds; returns it.
    pub fn wait_for_text(&self, css: &str, what: &str, limit: Duration, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(text) = self.text(css)
                && accept(&text)
            {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "waited {limit:?} for {what} (`{css}` is {:?}) at {}",
                self.text(css),
                self.url()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `css` selects at least one element.
    pub fn wait_for(&self, css: &str, what: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.count(css) == 0 {
            assert!(Instant::now() < deadline, "waited {limit:?} for {what} (`{css}`) at {}", self.url());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Types into the field `css` selects, replacing what it held.
    pub fn fill(&self, css: &str, text: &str) {
        self.on(css, "no field", |field| async move {
            field.clear().await?;
            field.send_keys(text).await
        });
    }

    pub fn click(&self, css: &str) {
        self.on(css, "nothing to click", |element| async move { element.click().await });
    }

    /// Finds `css` and does `act` to it, again if the page's live update replaced the element
    /// in between (a WebDriver handle points at one node; a user's pointer at whatever is there).
    fn on<F, Fut>(&self, css: &str, missing: &str, act: F)
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<(), fantoccini::error::CmdError>>,
    {
        self.runtime.block_on(async {
            for attempt in 1.. {
                let element =
                    self.client().find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{missing} at {css}: {e}"));
                match act(element).await {
                    Ok(()) => return,
                    // The page's live updates may replace or re-lay the node just found; a
                    // person's pointer would wait for it to settle, so this tries again.
                    Err(fantoccini::error::CmdError::Standard(e))
                        if matches!(
                            e.error,
                            fantoccini::error::ErrorStatus::StaleElementReference
                                | fantoccini::error::ErrorStatus::ElementNotInteractable
                        ) && attempt < 10 =>
                    {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    Err(e) => panic!("{css}: {e}"),
                }
            }
        });
    }

    /// Runs `script` in the page and returns what it returns (an async script's callback value
    /// when `asynchronous`).
    pub fn script(&self, script: &str, asynchronous: bool) -> serde_json::Value {
        self.runtime
            .block_on(async {
                if asynchronous {
                    self.client().execute_async(script, Vec::new()).await
                } else {
                    self.client().execute(script, Vec::new()).await
                }
            })
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// A POST from the page's own origin with `fetch` (as a forged form would be): its status.
    pub fn post(&self, path: &str, body: &str) -> u16 {
        let script = format!(
            "const done = arguments[0]; fetch({path:?}, {{ method: 'POST', headers: {{ 'Content-Type': \
             'application/x-www-form-urlencoded' }}, body: {body:?}, redirect: 'manual' }}).then(r => done(r.status), e => done(String(e)));"
        );
        let status = self.script(&script, true);
        status.as_u64().map_or_else(|| panic!("the POST did not answer: {status}"), |s| s as u16)
    }

    /// Saves the page at both sizes as `<name>-<width>x<height>.png` and returns the paths.
    pub fn shoot(&self, name: &str) -> Vec<PathBuf> {
        let dir = screenshots_dir();
        let mut paths = Vec::new();
        for (width, height) in [LAPTOP, PHONE] {
            self.viewport(width, height);
            let png = self.runtime.block_on(self.client().screenshot()).unwrap();
            let path = dir.join(format!("{name}-{width}x{height}.png"));
            std::fs::write(&path, png).unwrap();
            paths.push(path);
        }
        self.viewport(LAPTOP.0, LAPTOP.1);
        paths
    }

    /// Makes the page's viewport `width` x `height`: the window is that much larger than its
    /// viewport (the browser's own bars, even headless).
    fn viewport(&self, width: u32, height: u32) {
        self.runtime.block_on(self.client().set_window_size(width, height)).unwrap();
        let inner = self.script("return [window.innerWidth, window.innerHeight]", false);
        let (Some(inner_width), Some(inner_height)) = (inner[0].as_u64(), inner[1].as_u64()) else { return };
        let outer = |want: u32, got: u64| want + want.saturating_sub(u32::try_from(got).unwrap_or(want));
        self.runtime
            .block_on(self.client().set_window_size(outer(width, inner_width), outer(height, inner_height)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(client.close());
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = crate::harness::repo_root().join("target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn driver_path() -> &'static str {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromedriver")
}

fn chromium_path() -> &'static str {
    ["/usr/bin/chromium", "/usr/lib/chromium/chromium"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("chromium")
}
