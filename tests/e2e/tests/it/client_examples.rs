//! The typed clients' examples (`clients/typescript/examples/sync-folder.ts`, run with Node.js,
//! and `clients/rust/examples/sync_folder.rs`), run against the whole system through the
//! generated clients: each binds an app with a QR code the sandbox scans, asks lookup about a
//! folder's photos and uploads only the misses, and reads the balance.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use e2e::{Options, System};

use crate::classify::support::{bind, photo};

/// How to start one client's example: `program [args] <client-id> <folder>`.
struct Example {
    name: &'static str,
    program: PathBuf,
    args: Vec<PathBuf>,
}

fn typescript_example() -> Example {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../clients/typescript/dist/examples/sync-folder.js");
    assert!(
        path.exists(),
        "{}: run clients/typescript/check.sh first (it compiles the client and its example)",
        path.display()
    );
    Example {
        name: "ts",
        program: "node".into(),
        args: vec![path],
    }
}

/// The Rust example, which `cargo nextest run --workspace` builds beside the test binaries
/// (`target/<profile>/examples/`, one level up from this test's `deps/`).
fn rust_example() -> Example {
    let test_binary = std::env::current_exe().unwrap();
    let profile_dir = test_binary.parent().and_then(Path::parent).unwrap();
    let path = profile_dir.join("examples/sync-folder");
    assert!(
        path.exists(),
        "{}: build it first: cargo build -p xintu-client --examples",
        path.display()
    );
    Example {
        name: "rust",
        program: path,
        args: Vec::new(),
    }
}

/// A folder with two photos and a file that is not one.
fn photo_folder(example: &Example) -> PathBuf {
    let folder = std::env::temp_dir().join(format!(
        "xintu-{}-example-{}",
        example.name,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&folder);
    std::fs::create_dir_all(&folder).unwrap();
    for name in ["coffee.png", "astronaut.png"] {
        std::fs::write(folder.join(name), photo(name)).unwrap();
    }
    std::fs::write(folder.join("notes.txt"), "not a photo").unwrap();
    folder
}

#[tokio::test]
async fn the_typescript_example_binds_classifies_a_folder_lookup_first_and_reads_the_balance() {
    binds_classifies_a_folder_lookup_first_and_reads_the_balance(typescript_example()).await;
}

#[tokio::test]
async fn the_rust_example_binds_classifies_a_folder_lookup_first_and_reads_the_balance() {
    binds_classifies_a_folder_lookup_first_and_reads_the_balance(rust_example()).await;
}

async fn binds_classifies_a_folder_lookup_first_and_reads_the_balance(example: Example) {
    let system = System::start(Options::default()).await;
    // Another app has already classified the coffee: the example must find it by lookup.
    let other = bind(&system, "other-pc", "o_other_app").await;
    let form = reqwest::multipart::Form::new().part(
        "image",
        reqwest::multipart::Part::bytes(photo("coffee.png")).file_name("coffee.png"),
    );
    let response = system
        .http
        .post(format!("{}/api/v1/photos/classify", system.gateway()))
        .bearer_auth(&other)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let vision_calls_before = system.sandbox.stats().vision_calls;

    let folder = photo_folder(&example);
    let user = format!("o_{}_example", example.name);
    let mut child = tokio::process::Command::new(&example.program)
        .args(&example.args)
        .arg(format!("{}-example-pc", example.name))
        .arg(&folder)
        .env("XINTU_API_BASE_URL", system.gateway())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("{} does not start: {err}", example.program.display()));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|err| panic!("not a JSON line ({err}): {line}"));
            if event["event"] == "qrcode" {
                // The user scans the code in WeChat.
                let ticket = event["ticket"].as_str().expect("a ticket");
                system
                    .sandbox
                    .scan(&system.push_url(), ticket, &user)
                    .await
                    .expect("scan");
            }
            events.push(event);
        }
        child.wait().await.unwrap()
    };
    let status = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("the example finished within 90 s");
    assert!(status.success(), "the example failed: {events:?}");
    let _ = std::fs::remove_dir_all(&folder);

    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds,
        ["qrcode", "bound", "lookup", "photo", "photo", "account"],
        "{events:?}"
    );
    assert_eq!(events[1]["openid"], user.as_str());
    assert_eq!(events[2]["photos"], 2, "the text file is not a photo");
    assert_eq!(events[2]["found"], 1, "the coffee was already classified");
    let photos: HashMap<&str, &Value> = events[3..5]
        .iter()
        .map(|e| (e["file"].as_str().unwrap(), e))
        .collect();
    assert_eq!(photos["coffee.png"]["from"], "lookup", "{events:?}");
    assert_eq!(photos["coffee.png"]["category"], "food");
    assert_eq!(photos["astronaut.png"]["from"], "upload", "{events:?}");
    assert_eq!(
        photos["astronaut.png"]["source"], "model",
        "unsure locally: the cloud model"
    );
    assert_eq!(photos["astronaut.png"]["category"], "people");
    assert_eq!(photos["astronaut.png"]["credits_charged"], 1);
    assert_eq!(system.sandbox.stats().vision_calls, vision_calls_before + 1);

    // The balance the example read is the ledger's: the welcome credits less one cloud answer.
    let account = &events[5];
    let stored = system.snapshot(&user).await.remaining_credits;
    assert_eq!(account["available_credits"], 9, "{account}");
    assert_eq!(account["remaining_credits"].as_i64(), stored);
    assert_eq!(account["is_member"], false);
    system.assert_ledger_invariant().await;
}
