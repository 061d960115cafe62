//! The multipart form of a photo edit as the gateway reads it: any body under the multipart
//! content type gives the form or a clear error, and what is read respects the caps (image and
//! mask bytes, text lengths).

#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart};
use gateway::routes::photos::edit_form;
use libfuzzer_sys::fuzz_target;

// Inputs are at most 64 KiB; the cap leaves room for a panic's backtrace to be symbolised.
#[global_allocator]
static ALLOCATOR: cap::Cap<std::alloc::System> = cap::Cap::new(std::alloc::System, 256 << 20);

const BOUNDARY: &str = "xintu-fuzz-boundary";
const MAX_IMAGE_BYTES: usize = 64 * 1024;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap_or_else(|err| unreachable!("a current-thread runtime starts: {err}"))
    })
}

fuzz_target!(|body: &[u8]| {
    let request = http::Request::builder()
        .method("POST")
        .uri("/api/v1/photos/edits")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body.to_vec()));
    let Ok(request) = request else { return };
    runtime().block_on(async {
        let Ok(multipart) = Multipart::from_request(request, &()).await else {
            return;
        };
        let Ok(form) = edit_form::read(multipart, MAX_IMAGE_BYTES).await else {
            return;
        };
        assert!(form.image.len() <= MAX_IMAGE_BYTES);
        assert!(
            form.mask
                .as_ref()
                .is_none_or(|mask| mask.len() <= MAX_IMAGE_BYTES)
        );
        assert!(form.prompt.len() <= 4096 && form.function.len() <= 4096);
    });
});
