//! The soak's traffic: what apps and members do, each operation a short user action made of the
//! requests a real client sends, every request recorded. Users and apps are made once at the
//! start (a QR binding and a WeChat sign-in each, credits bought); operations then pick them at
//! random, so per-app and per-user allowances hold as they would for real users.

use std::io::Cursor;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};
use rand::Rng;
use rand::seq::IndexedRandom;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use e2e::compose::edge::{App, Edge, PUSH_URL};
use e2e::{MemberBrowser, member_sign_in};

use crate::record::{Answer, Recorder};

/// Operations and their weights: what a day of users does, most of it reads.
pub const MIX: [(Operation, u32); 11] = [
    (Operation::Location, 16),
    (Operation::Poll, 12),
    (Operation::Profile, 10),
    (Operation::Lookup, 8),
    (Operation::ClassifyHit, 8),
    (Operation::ClassifyMiss, 2),
    (Operation::Order, 3),
    (Operation::OrderStatus, 3),
    (Operation::OAuth, 2),
    (Operation::QrBind, 2),
    (Operation::Edit, 1),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Operation {
    Location,
    Poll,
    Profile,
    Lookup,
    ClassifyHit,
    ClassifyMiss,
    Order,
    OrderStatus,
    OAuth,
    QrBind,
    Edit,
}

/// A user of the soak: an app bound to them and their member page's signed-in browser.
pub struct User {
    pub openid: String,
    pub app: App,
    pub member: MemberBrowser,
}

/// An order the soak paid in the sandbox: it must end paid and credited once.
#[derive(Clone, Debug)]
pub struct PaidOrder {
    pub order_no: String,
    pub credits: i64,
    /// Whose it is: the index of the user in the soak's users.
    pub user: usize,
    /// When the sandbox answered the payment, since the soak began.
    pub paid_at: Duration,
}

/// Places users photograph, in and outside China (WGS-84).
const PLACES: [(f64, f64); 8] = [
    (39.9087, 116.3975),
    (31.2304, 121.4737),
    (22.5431, 114.0579),
    (30.2741, 120.1551),
    (48.8584, 2.2945),
    (35.6586, 139.7454),
    (40.7580, -73.9855),
    (25.0340, 121.5645),
];

pub struct Traffic {
    pub edge: Edge,
    pub recorder: Recorder,
    pub users: Vec<User>,
    /// The images of cache hits (classified in the setup) and the source of misses.
    hit_images: Vec<Vec<u8>>,
    miss_source: RgbImage,
    edit_image: Vec<u8>,
    known_digests: Vec<String>,
    /// This run's unique prefix for new apps and users (runs share a database).
    run_id: String,
    next: AtomicU64,
    paid: Mutex<Vec<PaidOrder>>,
}

fn png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Cursor::new(Vec::new());
    image.write_to(&mut bytes, ImageFormat::Png)?;
    Ok(bytes.into_inner())
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

impl Traffic {
    /// Prepares `users` users (bound app, signed-in member page, `credits` bought each) and the
    /// images; what it sends is recorded like the rest.
    pub async fn prepare(
        edge: Edge,
        recorder: Recorder,
        users: usize,
        credits: i64,
        photos: (Vec<u8>, Vec<u8>),
    ) -> Result<Self> {
        let run_id = format!("{:x}", chrono::Utc::now().timestamp() % 0xff_ffff);
        let (classify_photo, edit_image) = photos;
        let source = image::load_from_memory(&classify_photo)?.thumbnail(256, 256);
        let miss_source = source.to_rgb8();
        // Three small variants, classified once here: later requests for them are cache hits.
        let mut hit_images = Vec::new();
        for variant in 0..3u8 {
            let mut image = miss_source.clone();
            image.put_pixel(0, 0, Rgb([variant, 0, 0]));
            hit_images.push(png(&DynamicImage::ImageRgb8(image).to_rgb8())?);
        }
        let known_digests = hit_images.iter().map(|i| sha256_hex(i)).collect();
        let mut traffic = Self {
            edge,
            recorder,
            users: Vec::new(),
            hit_images,
            miss_source,
            edit_image,
            known_digests,
            run_id,
            next: AtomicU64::new(0),
            paid: Mutex::new(Vec::new()),
        };
        for n in 0..users {
            let openid = format!("o_soak_{}_{n}", traffic.run_id);
            let client_id = format!("soak-{}-{n}", traffic.run_id);
            let app = traffic.edge.bind_app(&client_id, &openid).await?;
            let (member, _) = member_sign_in(&traffic.edge.web, &openid, None).await;
            traffic.users.push(User {
                openid,
                app,
                member,
            });
        }
        for index in 0..traffic.users.len() {
            traffic.order_and_pay(index, credits).await?;
        }
        for (user, image) in traffic.users.iter().zip(&traffic.hit_images) {
            let answer = traffic.classify(user, image.clone()).await;
            ensure!(
                answer.as_ref().map(|a| a.status) == Some(200),
                "classify in the setup: {:?}",
                answer.map(|a| a.body)
            );
        }
        Ok(traffic)
    }

    pub fn paid_orders(&self) -> Vec<PaidOrder> {
        self.paid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// User `index` orders `credits` and pays in the sandbox; the order joins those that must
    /// end credited.
    async fn order_and_pay(&self, index: usize, credits: i64) -> Result<()> {
        let order_no = self.order(&self.users[index], credits).await?;
        let order = PaidOrder {
            order_no,
            credits,
            user: index,
            paid_at: self.recorder.elapsed(),
        };
        self.paid
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(order);
        Ok(())
    }

    /// Runs one operation; `Ok(false)` when one of its requests failed (recorded).
    pub async fn run(&self, operation: Operation) -> Result<bool> {
        let index = rand::rng().random_range(0..self.users.len());
        let user = &self.users[index];
        match operation {
            Operation::Location => self.location(user).await,
            Operation::Poll => self.poll(&user.app).await,
            Operation::Profile => Ok(self
                .member_get(user, "member/profile", "/api/v1/member/profile")
                .await),
            Operation::Lookup => self.lookup(user).await,
            Operation::ClassifyHit => {
                let image = self
                    .hit_images
                    .choose(&mut rand::rng())
                    .context("hit images")?;
                Ok(ok(self.classify(user, image.clone()).await))
            }
            Operation::ClassifyMiss => {
                let image = self.fresh_image()?;
                Ok(ok(self.classify(user, image).await))
            }
            Operation::Order => {
                let credits = rand::rng().random_range(1..=20);
                Ok(self.order_and_pay(index, credits).await.is_ok())
            }
            Operation::OrderStatus => self.order_status(index).await,
            Operation::OAuth => self.oauth(user).await,
            Operation::QrBind => self.qr_bind().await,
            Operation::Edit => self.edit(user).await,
        }
    }

    async fn location(&self, user: &User) -> Result<bool> {
        let (lat, lng) = {
            let mut rng = rand::rng();
            let (lat, lng) = *PLACES.choose(&mut rng).context("places")?;
            (
                lat + rng.random_range(-0.01..0.01),
                lng + rng.random_range(-0.01..0.01),
            )
        };
        let request = self
            .edge
            .http
            .get(format!("{}/api/v1/location", self.edge.api))
            .query(&[("lat", format!("{lat:.5}")), ("lng", format!("{lng:.5}"))])
            .bearer_auth(&user.app.token);
        Ok(ok(self.recorder.send("location", request).await))
    }

    async fn binding(&self, app: &App) -> Option<Answer> {
        let request = self
            .edge
            .http
            .get(format!("{}/api/v1/auth/wechat/binding", self.edge.api))
            .query(&[("client_id", app.client_id.as_str())])
            .bearer_auth(&app.token);
        self.recorder.send("auth/binding", request).await
    }

    async fn poll(&self, app: &App) -> Result<bool> {
        Ok(ok(self.binding(app).await))
    }

    async fn member_get(&self, user: &User, endpoint: &'static str, path: &str) -> bool {
        let request = user
            .member
            .http
            .get(format!("{}{path}", user.member.gateway));
        ok(self.recorder.send(endpoint, request).await)
    }

    async fn lookup(&self, user: &User) -> Result<bool> {
        let mut digests: Vec<String> = self.known_digests.clone();
        digests.extend((0..7).map(|_| hex::encode(rand::rng().random::<[u8; 32]>())));
        let request = self
            .edge
            .http
            .post(format!("{}/api/v1/photos/lookup", self.edge.api))
            .bearer_auth(&user.app.token)
            .json(&json!({ "sha256": digests }));
        Ok(ok(self.recorder.send("photos/lookup", request).await))
    }

    /// A variant of the classify photo nobody sent before: a cache miss.
    fn fresh_image(&self) -> Result<Vec<u8>> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut image = self.miss_source.clone();
        let bytes = n.to_le_bytes();
        image.put_pixel(1, 1, Rgb([bytes[0], bytes[1], bytes[2]]));
        image.put_pixel(2, 1, Rgb([bytes[3], bytes[4], 0xA5]));
        png(&image)
    }

    async fn classify(&self, user: &User, image: Vec<u8>) -> Option<Answer> {
        let form = Form::new().part("image", Part::bytes(image).file_name("photo.png"));
        let request = self
            .edge
            .http
            .post(format!("{}/api/v1/photos/classify", self.edge.api))
            .bearer_auth(&user.app.token)
            .multipart(form);
        self.recorder.send("photos/classify", request).await
    }

    /// Creates a credits order on the member page and pays it in WeChat (the sandbox); returns
    /// the order's number once WeChat Pay took the money.
    async fn order(&self, user: &User, credits: i64) -> Result<String> {
        let request = user
            .member
            .http
            .post(format!(
                "{}/api/v1/payment/create-order",
                user.member.gateway
            ))
            .json(&json!({ "order_type": "credits", "credits_amount": credits }));
        let answer = self
            .recorder
            .send("payment/create-order", request)
            .await
            .context("create-order: no answer")?;
        ensure!(answer.status == 200, "create-order: {}", answer.status);
        let order_no = answer.body["order"]["order_no"]
            .as_str()
            .context("order_no")?
            .to_owned();
        // WeChat Pay is not under test: its answer is not recorded.
        self.edge.pay(&order_no).await?;
        Ok(order_no)
    }

    /// The member page shows the user's latest order.
    async fn order_status(&self, index: usize) -> Result<bool> {
        let user = &self.users[index];
        let latest = {
            let paid = self
                .paid
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            paid.iter().rev().find(|o| o.user == index).cloned()
        };
        let order = latest.context("every user has the order of the setup")?;
        let path = format!("/api/v1/payment/orders/{}", order.order_no);
        let request = user
            .member
            .http
            .get(format!("{}{path}", user.member.gateway));
        Ok(ok(self.recorder.send("payment/orders/{no}", request).await))
    }

    /// A sign-in on the member page: authorize → WeChat (the sandbox) → callback.
    async fn oauth(&self, user: &User) -> Result<bool> {
        let http = reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()?;
        let authorize = http.get(format!("{}/api/v1/member/oauth/authorize", self.edge.web));
        let Some(to_wechat) = self
            .recorder
            .send("member/oauth/authorize", authorize)
            .await
        else {
            return Ok(false);
        };
        let Some(mut wechat) = redirect(&to_wechat) else {
            return Ok(false);
        };
        wechat.set_fragment(None);
        wechat
            .query_pairs_mut()
            .append_pair("sandbox_openid", &user.openid);
        // WeChat's page is not under test.
        let back = http.get(wechat).send().await?;
        let callback = back
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("WeChat's redirect")?
            .to_owned();
        let answer = self
            .recorder
            .send("member/oauth/callback", http.get(callback))
            .await;
        Ok(matches!(answer, Some(a) if a.status == 302))
    }

    /// A new app shows a QR code; its user scans it, sometimes twice (the first looked slow);
    /// the app polls until bound.
    async fn qr_bind(&self) -> Result<bool> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let client_id = format!("soak-{}-new-{n}", self.run_id);
        let openid = format!("o_soak_{}_new_{n}", self.run_id);
        let request = self
            .edge
            .http
            .post(format!("{}/api/v1/auth/wechat/qrcode", self.edge.api))
            .json(&json!({ "client_id": client_id }));
        let Some(qr) = self.recorder.send("auth/qrcode", request).await else {
            return Ok(false);
        };
        if qr.status != 200 {
            return Ok(false);
        }
        let ticket = qr.body["ticket"].as_str().context("ticket")?;
        let app = App {
            client_id,
            token: qr.body["client_token"]
                .as_str()
                .context("client_token")?
                .to_owned(),
        };
        let scans = if n.is_multiple_of(3) { 2 } else { 1 };
        for _ in 0..scans {
            // The push goes from the sandbox through lighttpd to the gateway: recorded there.
            if self.edge.scan(ticket, &openid, PUSH_URL).await.is_err() {
                return Ok(false);
            }
        }
        let started = Instant::now();
        loop {
            let Some(answer) = self.binding(&app).await else {
                return Ok(false);
            };
            if answer.status != 200 {
                return Ok(false);
            }
            if answer.body["status"] == "completed" {
                return Ok(answer.body["openid"] == openid.as_str());
            }
            if started.elapsed() > Duration::from_secs(20) {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A free-style edit, polled until it ends; its results fetched.
    async fn edit(&self, user: &User) -> Result<bool> {
        let form = Form::new()
            .part(
                "image",
                Part::bytes(self.edit_image.clone()).file_name("photo.png"),
            )
            .text("function", "stylization_all")
            .text("prompt", "转换成法国绘本风格");
        let request = self
            .edge
            .http
            .post(format!("{}/api/v1/photos/edit", self.edge.api))
            .bearer_auth(&user.app.token)
            .multipart(form);
        let Some(accepted) = self.recorder.send("photos/edit", request).await else {
            return Ok(false);
        };
        if accepted.status != 202 {
            return Ok(false);
        }
        let task_id = accepted.body["task_id"].as_str().context("task_id")?;
        let started = Instant::now();
        let task = loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let request = self
                .edge
                .http
                .get(format!("{}/api/v1/photos/edit/{task_id}", self.edge.api))
                .bearer_auth(&user.app.token);
            let Some(answer) = self.recorder.send("photos/edit/{id}", request).await else {
                return Ok(false);
            };
            if answer.status != 200 {
                return Ok(false);
            }
            if answer.body["status"] == "succeeded" || answer.body["status"] == "failed" {
                break answer.body;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("edit {task_id} never ended");
            }
        };
        if task["status"] != "succeeded" {
            return Ok(false);
        }
        for result in task["results"].as_array().into_iter().flatten() {
            let url = result["url"].as_str().context("result url")?;
            let request = self.edge.http.get(format!("{}{url}", self.edge.api));
            if !ok(self.recorder.send("photos/edit/results", request).await) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

fn ok(answer: Option<Answer>) -> bool {
    matches!(answer, Some(a) if a.status < 400)
}

fn redirect(answer: &Answer) -> Option<reqwest::Url> {
    let location = answer.headers.get("location")?.to_str().ok()?;
    reqwest::Url::parse(location).ok()
}
