//! The built Lambda binary refuses to start without its secrets, and says what to set.

use std::process::Command;

#[test]
fn the_binary_names_the_missing_secret_and_exits() {
    let out = Command::new(env!("CARGO_BIN_EXE_webhook"))
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .env("WAHOOK_VERIFY_TOKEN", "t")
        .output()
        .expect("run the webhook binary");
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("WAHOOK_APP_SECRET is not set"), "{all}");
    assert!(
        all.contains("startup_failed"),
        "logged as a structured event: {all}"
    );
}
