//! Every HTTP client in the workspace starts from one place. reqwest is built without a crypto
//! provider of its own, so `reqwest::get` or a plain `reqwest::Client` compiles fine and panics when
//! it sets up TLS: each must come from `wahook::tls::https_client_builder` (which also shares one
//! reading of the system's roots). Every AWS SDK configuration comes from `wahook::aws::sdk_loader`,
//! so tests and tools run the functions' behavior version. This finds the exceptions before a user
//! does.

use std::path::{Path, PathBuf};

/// What must not appear, and where it may (the one place that wraps it).
const FORBIDDEN: &[(&str, &[&str])] = &[
    ("aws_config::defaults(", &["shared/src/aws.rs"]),
    ("reqwest::get(", &[]),
    ("reqwest::Client::new(", &[]),
    // The simulator depends on nothing of wahook and installs aws-lc-rs as the process default first.
    (
        "reqwest::Client::builder(",
        &["shared/src/tls.rs", "tools/meta-sim/src/lib.rs"],
    ),
    ("reqwest::ClientBuilder::new(", &[]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_http_client_is_built_through_wahook_tls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for dir in [
        "shared/src",
        "shared/benches",
        "functions",
        "tools",
        "tests",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "the walk found the workspace's sources");
    let this_file = Path::new(file!()).file_name().unwrap();
    let mut found = Vec::new();
    for file in &files {
        if file.file_name() == Some(this_file) {
            continue;
        }
        let relative = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(file).expect("a source file");
        for (line_no, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (pattern, allowed) in FORBIDDEN {
                if line.contains(pattern) && !allowed.contains(&relative.as_str()) {
                    found.push(format!("{relative}:{}: {pattern}", line_no + 1));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "build HTTP clients with wahook::aws::sdk_loader() / wahook::tls::https_client_builder():\n{}",
        found.join("\n")
    );
}
