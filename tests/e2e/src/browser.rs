//! Real headless Chromium for page tests, driven through chromedriver's WebDriver HTTP API (plus
//! its DevTools pass-through for init scripts and full-page screenshots). Nothing is downloaded:
//! the Debian packages `chromium` and `chromium-driver` are used as installed.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use crate::edge::{Process, ScratchDir, artifacts_dir, free_port, require_tool};

/// The W3C WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// WeChat's in-app browser on Android (what the member page sees inside WeChat).
pub const WECHAT_USER_AGENT: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A) \
    AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.120 Mobile Safari/537.36 \
    XWEB/1220133 MMWEBSDK/20240404 MMWEBID/2307 MicroMessenger/8.0.49.2600(0x28003133) \
    WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64";

/// Safari on an iPhone: a phone browser that is not WeChat.
pub const PHONE_USER_AGENT: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) \
    AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1";

#[derive(Clone, Debug)]
pub struct BrowserOptions {
    /// Emulate a phone of this size (CSS pixels) and user agent; None: a desktop window.
    pub phone: Option<(u32, u32, &'static str)>,
    pub window: (u32, u32),
    /// Host names resolved to 127.0.0.1 (ports come from the URLs); every other name fails.
    pub hosts: Vec<String>,
}

impl Default for BrowserOptions {
    fn default() -> Self {
        Self {
            phone: None,
            window: (1280, 900),
            hosts: crate::edge::SITE_HOSTS.map(str::to_owned).to_vec(),
        }
    }
}

/// One Chromium session. Dropping it stops chromedriver and the browser.
pub struct Browser {
    http: reqwest::Client,
    session: String,
    _profile: ScratchDir,
    driver: Process,
}

impl Browser {
    pub async fn start(options: BrowserOptions) -> Self {
        let chromium = require_tool("chromium", "chromium");
        let chromedriver = require_tool("chromedriver", "chromium-driver");
        let profile = ScratchDir::new("chromium");
        let port = free_port();
        let mut driver = Process::spawn(
            "chromedriver",
            Command::new(chromedriver)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1"),
            &profile,
        );
        driver.wait_for_port(port).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("webdriver client");

        let mut rules: Vec<String> = options
            .hosts
            .iter()
            .map(|host| format!("MAP {host} 127.0.0.1"))
            .collect();
        rules.push("MAP * ~NOTFOUND".to_owned());
        rules.push("EXCLUDE 127.0.0.1".to_owned());
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--lang=zh-CN".to_owned(),
            format!(
                "--user-data-dir={}",
                profile.join("user-data").to_string_lossy()
            ),
            format!("--host-resolver-rules={}", rules.join(", ")),
            format!("--window-size={},{}", options.window.0, options.window.1),
        ];
        let mut chrome_options = json!({ "binary": chromium, "args": [] });
        if let Some((width, height, user_agent)) = options.phone {
            chrome_options["mobileEmulation"] = json!({
                "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2.0,
                                   "mobile": true, "touch": true },
                "userAgent": user_agent,
            });
        }
        chrome_options["args"] = json!(args);
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": chrome_options,
            "timeouts": { "script": 30000, "pageLoad": 30000, "implicit": 0 },
        }}});
        let base = format!("http://127.0.0.1:{port}");
        let created = call(
            &http,
            reqwest::Method::POST,
            &format!("{base}/session"),
            Some(capabilities),
        )
        .await;
        let id = created["sessionId"]
            .as_str()
            .expect("a WebDriver session id")
            .to_owned();
        Self {
            http,
            session: format!("{base}/session/{id}"),
            _profile: profile,
            driver,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        call(
            &self.http,
            reqwest::Method::POST,
            &format!("{}{path}", self.session),
            Some(body),
        )
        .await
    }

    /// Runs `source` in every document before its own scripts (as WeChat injects its bridge).
    pub async fn add_init_script(&self, source: &str) {
        self.cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": source }),
        )
        .await;
    }

    /// A Chrome DevTools Protocol command on the current tab.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post("/goog/cdp/execute", json!({ "cmd": cmd, "params": params }))
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({ "url": url })).await;
    }

    pub async fn current_url(&self) -> String {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}/url", self.session),
            None,
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// `script` is a function body: `return ...;`.
    pub async fn execute(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({ "script": script, "args": [] }))
            .await
    }

    /// Clicks the element matching `css`, as a user would (it must be visible and enabled).
    pub async fn click(&self, css: &str) {
        let found = self
            .post("/element", json!({ "using": "css selector", "value": css }))
            .await;
        let element = found[ELEMENT].as_str().expect("an element").to_owned();
        self.post(&format!("/element/{element}/click"), json!({}))
            .await;
    }

    /// The visible text of the element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let css = serde_json::to_string(css).expect("css");
        self.execute(&format!(
            "const e = document.querySelector({css}); return e ? e.innerText : null;"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Polls the JavaScript expression `condition` until it is truthy and returns its value; after
    /// 30 s fails the test with `what`, the page's text and a screenshot.
    pub async fn wait_for(&self, condition: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        let script = format!("try {{ return ({condition}); }} catch (e) {{ return null; }}");
        loop {
            let value = self.execute(&script).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|n| n != 0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let shot = self.screenshot("timeout").await;
                let text = self.text("body").await;
                panic!(
                    "timed out waiting for {what} ({condition}); url {}; screenshot {}; page:\n{text}",
                    self.current_url().await,
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A full-page PNG under the artifacts directory (`edge/<name>.png`); returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(390.0).ceil();
        let height = size["height"].as_f64().unwrap_or(844.0).ceil();
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({
                    "format": "png",
                    "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": width, "height": height, "scale": 1 },
                }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("screenshot base64");
        let dir = artifacts_dir().join("edge");
        std::fs::create_dir_all(&dir).expect("artifacts/edge");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// The current tab's handle.
    pub async fn window_handle(&self) -> String {
        call(
            &self.http,
            reqwest::Method::GET,
            &format!("{}/window", self.session),
            None,
        )
        .await
        .as_str()
        .expect("window handle")
        .to_owned()
    }

    /// Opens a new tab and switches to it; returns the previous tab's handle.
    pub async fn new_tab(&self) -> String {
        let previous = self.window_handle().await;
        let created = self.post("/window/new", json!({ "type": "tab" })).await;
        let handle = created["handle"]
            .as_str()
            .expect("new tab handle")
            .to_owned();
        self.switch_to(&handle).await;
        previous
    }

    pub async fn switch_to(&self, handle: &str) {
        self.post("/window", json!({ "handle": handle })).await;
    }

    /// Ends the session (closing Chromium) and stops chromedriver.
    pub async fn quit(mut self) {
        let _ = self.http.delete(&self.session).send().await;
        self.driver.stop();
    }
}

/// One WebDriver call; a WebDriver error fails the test with its message.
async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> Value {
    let mut request = http.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("WebDriver {method} {url}: {err}"));
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    let value = answer["value"].clone();
    assert!(
        status.is_success(),
        "WebDriver {method} {url} failed ({status}): {value}"
    );
    value
}
