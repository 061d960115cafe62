//! The Rust client (`clients/rust`) against the whole system: the hand-written uploads (a batch,
//! an edit with an idempotency key), the generated operations they lead to (an edit task, its
//! result as bytes) and error answers as `Error::ErrorResponse` with the gateway's stable code.

use std::time::{Duration, Instant};

use e2e::Options;
use e2e::api::refusal;
use xintu_client::{Client, EditRequest, Photo, types};

use crate::classify::support::{App, bound_app, photo};
use crate::edit::support::{assert_inverted_photo, photo as edit_photo};

/// A system with an app bound to `openid`, and the Rust client acting as that app.
async fn bound_client(openid: &str) -> (App, Client) {
    let app = bound_app(Options::default(), openid).await;
    let api = Client::new(app.system.gateway())
        .with_client_token(&app.token)
        .unwrap();
    (app, api)
}

#[tokio::test]
async fn the_rust_client_classifies_a_batch_and_reads_error_answers() {
    let (app, api) = bound_client("o_rust_batch").await;

    let photos = [
        Photo::new("coffee.png", photo("coffee.png")),
        Photo::new("notes.txt", b"not a photo".to_vec()),
    ];
    let batch = api
        .classify_batch(&photos, Some("local"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.results.len(), 2, "{batch:?}");
    let coffee = &batch.results[0];
    assert_eq!(coffee.filename.as_deref(), Some("coffee.png"));
    assert_eq!(coffee.classification.as_ref().unwrap().category, "food");
    let text = &batch.results[1];
    assert!(text.classification.is_none(), "{text:?}");
    assert_eq!(text.error.as_ref().unwrap().code, "not_an_image");

    // The batch's answer is what lookup now knows, through a generated operation.
    let known = api
        .lookup()
        .body(types::LookupIn::builder().sha256(vec![xintu_client::sha256_hex(&photos[0].bytes)]))
        .send()
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        known.results[0].classification.as_ref().unwrap().label,
        coffee.classification.as_ref().unwrap().label
    );

    // Errors, generated and hand-written alike: the status and the stable code.
    let bad_digest = api
        .lookup()
        .body(types::LookupIn::builder().sha256(vec!["not-a-digest".to_owned()]))
        .send()
        .await;
    assert_eq!(
        refusal(bad_digest).status_and_code(),
        (400, "invalid_digest")
    );
    let bad_mode = api.classify(&photos[0], Some("fastest")).await;
    assert_eq!(refusal(bad_mode).status_and_code(), (400, "invalid_mode"));
    let stranger = Client::new(app.system.gateway())
        .with_client_token("not-a-token-we-issued")
        .unwrap();
    let account = stranger.get_account().send().await;
    assert_eq!(
        refusal(account).status_and_code(),
        (401, "invalid_client_token")
    );
    assert!(
        Client::new(app.system.gateway())
            .with_client_token("line\nbreak")
            .is_err(),
        "a token no header can carry"
    );
}

#[tokio::test]
async fn the_rust_client_edits_a_photo_once_per_idempotency_key_and_downloads_the_result() {
    let (app, api) = bound_client("o_rust_edit").await;

    let mut request = EditRequest::new("description_edit", Photo::new("photo.png", edit_photo()));
    request.prompt = Some("给小猫添加一副墨镜".to_owned());
    request.outputs = Some(1);
    request.strength = Some(0.6);
    request.idempotency_key = Some("rust-client-edit-1".to_owned());
    let accepted = api.submit_edit(&request).await.unwrap();
    assert_eq!(accepted.status().as_u16(), 202);
    let accepted = accepted.into_inner();
    assert!(accepted.created);
    assert_eq!(accepted.credits_reserved, 1);
    let again = api.submit_edit(&request).await.unwrap().into_inner();
    assert_eq!(
        again.task_id, accepted.task_id,
        "the same key: the same task"
    );
    assert!(!again.created);

    let deadline = Instant::now() + Duration::from_secs(20);
    let task = loop {
        let task = api
            .get_edit_task()
            .task_id(accepted.task_id.clone())
            .send()
            .await
            .unwrap()
            .into_inner();
        if task.status == "succeeded" || task.status == "failed" {
            break task;
        }
        assert!(Instant::now() < deadline, "still {}", task.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(task.status, "succeeded", "{task:?}");
    assert_eq!(task.credits_charged, 1);
    let result = &task.results[0];
    let token = result
        .url
        .strip_prefix("/api/v1/photos/edit/results/")
        .unwrap();
    let image = api
        .get_edit_result()
        .token(token)
        .send()
        .await
        .unwrap()
        .into_inner_stream();
    let bytes: Vec<u8> =
        futures::TryStreamExt::try_concat(futures::TryStreamExt::map_ok(image, |chunk| {
            chunk.to_vec()
        }))
        .await
        .unwrap();
    assert_eq!(i64::try_from(bytes.len()).unwrap(), result.bytes);
    assert_inverted_photo(&bytes);
    app.system.assert_ledger_invariant().await;
}
