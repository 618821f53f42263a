//! The built Lambda binary refuses to start without its business account or token, and says what
//! to set.

use std::process::Command;

fn run(env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_template-sync"));
    cmd.env_clear().env("AWS_REGION", "us-east-1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the template-sync binary");
    assert!(!out.status.success());
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_binary_names_the_missing_account_then_the_missing_token() {
    let all = run(&[]);
    assert!(all.contains("WAHOOK_WABA_ID"), "{all}");
    let all = run(&[("WAHOOK_WABA_ID", "102290129340398")]);
    assert!(all.contains("WAHOOK_ACCESS_TOKEN is not set"), "{all}");
}
