//! The built Lambda binary refuses to start without its access token, and says what to set.

use std::process::Command;

#[test]
fn the_binary_names_the_missing_token_and_exits() {
    let out = Command::new(env!("CARGO_BIN_EXE_sender"))
        .env_clear()
        .env("AWS_REGION", "us-east-1")
        .output()
        .expect("run the sender binary");
    assert!(!out.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("WAHOOK_ACCESS_TOKEN is not set"), "{all}");
}
