//! A tool's first minute, with the typed client: bind this install to a WeChat user through a QR
//! code, classify a folder's photos (asking lookup first, so a photo classified before, by any
//! app, is never uploaded again) and read the balance. Each step prints one JSON line.
//!
//! ```sh
//! XINTU_API_BASE_URL=https://api.aifuture.net.cn \
//!   cargo run -p xintu-client --example sync-folder -- <client-id> <folder>
//! ```

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use xintu_client::{Client, Photo, sha256_hex, types};

/// The formats the gateway classifies.
const PHOTO_EXTENSIONS: [&str; 5] = ["jpg", "jpeg", "png", "webp", "gif"];
/// Most digests in one lookup.
const LOOKUP_MAX: usize = 500;

fn emit(event: &str, fields: Value) {
    let mut line = json!({ "event": event });
    if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
        line.extend(fields);
    }
    println!("{line}");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(client_id), Some(folder)) = (args.next(), args.next()) else {
        eprintln!("usage: sync-folder <client-id> <folder>");
        std::process::exit(2);
    };
    let base_url =
        std::env::var("XINTU_API_BASE_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());

    // 1. A QR code for the user to scan. Its token acts for the user once the scan is done; keep
    //    it (the system's keychain) for the life of the install.
    let qrcode = Client::new(&base_url)
        .create_qrcode()
        .body(types::QrCodeIn::builder().client_id(client_id.clone()))
        .send()
        .await?
        .into_inner();
    let api = Client::new(&base_url).with_client_token(&qrcode.client_token)?;
    emit(
        "qrcode",
        json!({ "ticket": qrcode.ticket, "qrcode_url": qrcode.qrcode_url, "expires_at": qrcode.expires_at }),
    );

    // 2. Long polls: each answers as soon as the scan is processed, or after 25 s as "pending".
    loop {
        let binding = api
            .binding_status()
            .client_id(client_id.clone())
            .wait(25)
            .send()
            .await?
            .into_inner();
        match binding.status.as_str() {
            "completed" => {
                emit("bound", json!({ "openid": binding.openid }));
                break;
            }
            "expired" => {
                bail!("the QR code expired before it was scanned: run again for a new one")
            }
            _ => {}
        }
    }

    // 3. The folder's photos and their SHA-256 digests.
    let photos = read_photos(Path::new(&folder))?;
    let digests: Vec<String> = photos
        .iter()
        .map(|photo| sha256_hex(&photo.bytes))
        .collect();

    // 4. Lookup first: it never runs a model and never costs credits.
    let mut known: HashMap<String, types::ClassificationOut> = HashMap::new();
    for chunk in digests.chunks(LOOKUP_MAX) {
        let answer = api
            .lookup()
            .body(types::LookupIn::builder().sha256(chunk.to_vec()))
            .send()
            .await?
            .into_inner();
        for result in answer.results {
            if let Some(classification) = result.classification {
                known.insert(result.sha256, classification);
            }
        }
    }
    emit(
        "lookup",
        json!({ "photos": photos.len(), "found": known.len() }),
    );

    // 5. Upload only the misses.
    for (photo, digest) in photos.iter().zip(&digests) {
        if let Some(stored) = known.get(digest) {
            emit(
                "photo",
                json!({ "file": photo.file_name, "from": "lookup", "category": stored.category, "label": stored.label }),
            );
            continue;
        }
        let classified = api.classify(photo, Some("auto")).await?.into_inner();
        emit(
            "photo",
            json!({
                "file": photo.file_name,
                "from": "upload",
                "category": classified.category,
                "label": classified.label,
                "source": classified.source,
                "credits_charged": classified.credits_charged,
            }),
        );
        known.insert(digest.clone(), classified);
    }

    // 6. The balance, as the member page shows it.
    let account = api.get_account().send().await?.into_inner();
    emit(
        "account",
        json!({
            "available_credits": account.available_credits,
            "remaining_credits": account.remaining_credits,
            "is_member": account.is_member,
            "member_expire_at": account.member_expire_at,
        }),
    );
    Ok(())
}

/// The folder's photos by name, in name order.
fn read_photos(folder: &Path) -> anyhow::Result<Vec<Photo>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(folder).with_context(|| format!("{}", folder.display()))? {
        let path = entry?.path();
        let is_photo = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| PHOTO_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()));
        if !is_photo {
            continue;
        }
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        photos.push(Photo::new(
            file_name.unwrap_or_default(),
            std::fs::read(&path)?,
        ));
    }
    photos.sort_by(|a, b| a.file_name.cmp(&b.file_name));
    Ok(photos)
}
