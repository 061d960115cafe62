//! Bad edit requests get a clear error and change nothing: no task, no credit held or spent.

use e2e::Options;

use super::support::{App, bound_app, form, photo, test_png, with_mask};

/// Asserts a refusal with `status` and `code`, and that nothing moved.
async fn assert_refused(app: &App, answer: (u16, serde_json::Value), status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(got, status, "{code}: {body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(app.credits().await, (10, 0), "{code}: credits moved");
    assert_eq!(app.edit_spending().await, (0, 0));
}

#[tokio::test]
async fn bad_edit_requests_are_refused_and_change_nothing() {
    let app = bound_app(Options::default(), "o_edit_bad").await;
    let cases = [
        (
            form(
                b"not an image at all".to_vec(),
                "description_edit",
                &[("prompt", "x")],
            ),
            422,
            "not_an_image",
        ),
        (
            form(photo(), "make_it_pretty", &[("prompt", "x")]),
            400,
            "unknown_function",
        ),
        (
            form(photo(), "description_edit", &[]),
            400,
            "missing_prompt",
        ),
        (
            form(
                photo(),
                "description_edit",
                &[("prompt", "x"), ("outputs", "5")],
            ),
            400,
            "invalid_parameter",
        ),
        (
            form(
                photo(),
                "description_edit",
                &[("prompt", "x"), ("upscale_factor", "2")],
            ),
            400,
            "invalid_parameter",
        ),
        (
            form(
                photo(),
                "description_edit",
                &[("prompt", "x"), ("strength", "strong")],
            ),
            400,
            "invalid_parameter",
        ),
        (
            form(
                photo(),
                "description_edit",
                &[("prompt", "x"), ("colour", "red")],
            ),
            400,
            "unknown_field",
        ),
        (
            form(photo(), "description_edit_with_mask", &[("prompt", "x")]),
            400,
            "missing_mask",
        ),
        (
            with_mask(
                form(
                    photo(),
                    "description_edit_with_mask",
                    &[("prompt", "陶瓷兔子")],
                ),
                test_png(768, 511),
            ),
            400,
            "mask_size_mismatch",
        ),
        (
            with_mask(
                form(photo(), "description_edit", &[("prompt", "x")]),
                photo(),
            ),
            400,
            "mask_not_allowed",
        ),
        (
            form(test_png(300, 300), "description_edit", &[("prompt", "x")]),
            422,
            "image_dimensions",
        ),
    ];
    for (form, status, code) in cases {
        let answer = app.submit_edit(form).await;
        assert_refused(&app, answer, status, code).await;
    }
    // Over the upload cap: refused at the gateway while reading.
    let mut huge = photo();
    huge.resize(10 * 1024 * 1024 + 1, 0);
    let answer = app
        .submit_edit(form(huge, "description_edit", &[("prompt", "x")]))
        .await;
    assert_refused(&app, answer, 413, "payload_too_large").await;
    // A truncated PNG and a decompression bomb.
    let png = photo();
    let answer = app
        .submit_edit(form(
            png[..png.len() / 2].to_vec(),
            "description_edit",
            &[("prompt", "x")],
        ))
        .await;
    assert!(answer.0 == 422, "{answer:?}");
    assert_eq!(app.edit_rows().await, 0, "no task for refused requests");
    assert_eq!(app.system.sandbox.edit_stats().submits, 0);
}

#[tokio::test]
async fn an_edit_beyond_the_balance_is_refused_and_holds_nothing() {
    let app = bound_app(Options::default(), "o_edit_poor").await;
    // 10 credits: four outputs three times is 12.
    let first = app
        .edit(form(
            photo(),
            "description_edit",
            &[("prompt", "a"), ("outputs", "4")],
        ))
        .await;
    let second = app
        .edit(form(
            photo(),
            "description_edit",
            &[("prompt", "b"), ("outputs", "4")],
        ))
        .await;
    let (status, body) = app
        .submit_edit(form(
            photo(),
            "description_edit",
            &[("prompt", "c"), ("outputs", "4")],
        ))
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_credits");
    for id in [first, second] {
        let task = app
            .wait_for_edit(&id, std::time::Duration::from_secs(20))
            .await;
        assert_eq!(task["status"], "succeeded", "{task}");
    }
    assert_eq!(app.credits().await, (2, 0));
    assert_eq!(app.edit_spending().await, (2, 8));
    app.system.assert_ledger_invariant().await;
}

#[tokio::test]
async fn edits_need_a_bound_client() {
    let app = bound_app(Options::default(), "o_edit_unbound").await;
    let qr = app.system.create_qrcode("pc-never-bound").await;
    let unbound = qr.client_token.as_str();
    let (status, body) = app
        .submit_edit_as(
            unbound,
            form(photo(), "description_edit", &[("prompt", "x")]),
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = app
        .submit_edit_as(
            "nonsense",
            form(photo(), "description_edit", &[("prompt", "x")]),
            None,
        )
        .await;
    assert_eq!(status, 401);
}
