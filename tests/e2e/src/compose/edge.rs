//! What users do, through the ports the deployment publishes on 127.0.0.1 only: the app through
//! nginx, the member page and WeChat's callbacks through lighttpd, the admin site through
//! lighttpd's admin host, and the sandbox's control API as the WeChat user.

use std::time::{Duration, Instant};

use crate::{MemberBrowser, member_sign_in};
use anyhow::{Context, Result, bail, ensure};
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// A test photo that `deploy/local/fetch-model.sh` prepared.
pub fn sample_photo(name: &str) -> Result<Vec<u8>> {
    Ok(photo_model::data_dir::sample_photo(name)?)
}

/// Where the edge listens, from the ports compose publishes.
pub struct Edge {
    /// nginx: the app's API (api.aifuture.net.cn).
    pub api: String,
    /// lighttpd: the sites, the member page and WeChat's callbacks.
    pub web: String,
    pub lighttpd_port: u16,
    /// The sandbox playing WeChat, WeChat Pay and DashScope, as the browser and the user reach it.
    pub sandbox: String,
    pub http: reqwest::Client,
}

/// WeChat's servers push to this address; the sandbox sends from inside the compose network.
pub const PUSH_URL: &str = "http://lighttpd/api/v1/auth/wechat/verify";

/// An app client bound to a WeChat user.
pub struct App {
    pub client_id: String,
    pub token: String,
}

async fn answer(response: reqwest::Response) -> Result<(u16, Value)> {
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn port(name: &str) -> Result<u16> {
    std::env::var(name)
        .with_context(|| format!("{name} (the project's environment)"))?
        .parse()
        .with_context(|| format!("{name} is a port"))
}

impl Edge {
    pub fn from_env() -> Result<Self> {
        let lighttpd_port = port("LIGHTTPD_PORT")?;
        Ok(Self {
            api: format!("http://127.0.0.1:{}", port("NGINX_PORT")?),
            web: format!("http://127.0.0.1:{lighttpd_port}"),
            lighttpd_port,
            sandbox: format!("http://127.0.0.1:{}", port("SANDBOX_PORT")?),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    async fn sandbox_call(&self, path: &str, body: Value) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/_sandbox/{path}", self.sandbox))
            .json(&body)
            .send()
            .await?;
        let (status, body) = answer(response).await?;
        ensure!(
            (200..300).contains(&status),
            "sandbox {path}: {status} {body}"
        );
        Ok(body)
    }

    /// How WeChat Pay delivers its notifies from now on (`"normal"`, `"drop"`,
    /// `{"duplicates": n}`).
    pub async fn notify_mode(&self, mode: Value) -> Result<()> {
        self.sandbox_call("notify-mode", mode).await.map(drop)
    }

    /// The user pays the order in WeChat.
    pub async fn pay(&self, order_no: &str) -> Result<()> {
        self.sandbox_call("pay", json!({ "order": order_no }))
            .await
            .map(drop)
    }

    /// `openid` scans the QR code of `ticket` in WeChat; WeChat pushes the event to `push_url`.
    pub async fn scan(&self, ticket: &str, openid: &str, push_url: &str) -> Result<()> {
        self.sandbox_call(
            "scan",
            json!({ "ticket": ticket, "openid": openid, "push_url": push_url }),
        )
        .await
        .map(drop)
    }

    /// A QR code for `client_id` through nginx, scanned by `openid` in the sandbox (its push
    /// through lighttpd), polled through nginx until bound. Also loads the QR image, as the app
    /// shows it, from the address the API gave.
    pub async fn bind_app(&self, client_id: &str, openid: &str) -> Result<App> {
        let response = self
            .http
            .post(format!("{}/api/v1/auth/wechat/qrcode", self.api))
            .json(&json!({ "client_id": client_id }))
            .send()
            .await?;
        let (status, qr) = answer(response).await?;
        ensure!(status == 200, "qrcode: {status} {qr}");
        let image_url = qr["qrcode_image_url"]
            .as_str()
            .context("qrcode_image_url")?;
        let image = self.http.get(image_url).send().await?;
        ensure!(
            image.status() == 200,
            "the QR image {image_url} does not load from the host: {}",
            image.status()
        );
        let ticket = qr["ticket"].as_str().context("ticket")?;
        let app = App {
            client_id: client_id.to_owned(),
            token: qr["client_token"]
                .as_str()
                .context("client_token")?
                .to_owned(),
        };
        self.scan(ticket, openid, PUSH_URL).await?;
        let started = Instant::now();
        loop {
            let (status, binding) = self.binding(&app).await?;
            ensure!(status == 200, "binding: {status} {binding}");
            if binding["status"] == "completed" {
                ensure!(
                    binding["openid"] == openid,
                    "bound to someone else: {binding}"
                );
                return Ok(app);
            }
            if started.elapsed() > Duration::from_secs(20) {
                bail!("the binding never completed: {binding}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn binding(&self, app: &App) -> Result<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}/api/v1/auth/wechat/binding", self.api))
            .query(&[("client_id", app.client_id.as_str())])
            .bearer_auth(&app.token)
            .send()
            .await?;
        answer(response).await
    }

    pub async fn locate(&self, app: &App) -> Result<(u16, Value)> {
        let response = self
            .http
            .get(format!("{}/api/v1/location", self.api))
            .query(&[("lat", "39.9087"), ("lng", "116.3975")])
            .bearer_auth(&app.token)
            .send()
            .await?;
        answer(response).await
    }

    pub async fn classify(&self, app: &App, image: Vec<u8>) -> Result<(u16, Value)> {
        let form = Form::new().part("image", Part::bytes(image).file_name("photo.png"));
        let response = self
            .http
            .post(format!("{}/api/v1/photos/classify", self.api))
            .bearer_auth(&app.token)
            .multipart(form)
            .send()
            .await?;
        answer(response).await
    }

    /// A free-style edit, polled until it ends; returns the finished task.
    pub async fn edit(&self, app: &App, image: Vec<u8>) -> Result<Value> {
        let form = Form::new()
            .part("image", Part::bytes(image).file_name("photo.png"))
            .text("function", "stylization_all")
            .text("prompt", "转换成法国绘本风格");
        let response = self
            .http
            .post(format!("{}/api/v1/photos/edit", self.api))
            .bearer_auth(&app.token)
            .multipart(form)
            .send()
            .await?;
        let (status, accepted) = answer(response).await?;
        ensure!(status == 202, "edit: {status} {accepted}");
        let task_id = accepted["task_id"].as_str().context("task_id")?;
        let started = Instant::now();
        loop {
            let response = self
                .http
                .get(format!("{}/api/v1/photos/edit/{task_id}", self.api))
                .bearer_auth(&app.token)
                .send()
                .await?;
            let (status, task) = answer(response).await?;
            ensure!(status == 200, "edit task: {status} {task}");
            if task["status"] == "succeeded" || task["status"] == "failed" {
                return Ok(task);
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("the edit never ended: {task}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// GETs a path of the API without credentials (edit results are reached by their signed URL).
    pub async fn fetch(&self, path: &str) -> Result<(u16, usize)> {
        let response = self.http.get(format!("{}{path}", self.api)).send().await?;
        let status = response.status().as_u16();
        Ok((status, response.bytes().await?.len()))
    }

    /// The member page's browser, signed in through WeChat OAuth via lighttpd.
    pub async fn member(&self, openid: &str) -> MemberBrowser {
        member_sign_in(&self.web, openid, None).await.0
    }

    /// The admin site's browser: lighttpd's admin host (as a hosts-file entry would name it),
    /// signed in with the operator's password; sends its page's origin as browsers do.
    pub async fn admin(&self, password: &str) -> Result<MemberBrowser> {
        let site = format!("http://admin.xintuxiangce.top:{}", self.lighttpd_port);
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(reqwest::header::ORIGIN, site.parse()?);
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .resolve(
                "admin.xintuxiangce.top",
                ([127, 0, 0, 1], self.lighttpd_port).into(),
            )
            .timeout(Duration::from_secs(30))
            .build()?;
        let browser = MemberBrowser {
            http,
            gateway: site,
        };
        let (status, body) = browser
            .post(
                "/api/v1/admin/login",
                json!({ "username": "admin", "password": password }),
            )
            .await;
        ensure!(status == 200, "admin sign-in: {status} {body}");
        Ok(browser)
    }
}
