//! Compiles the README's Rust producer example: its one ```rust block is written to
//! `$OUT_DIR/readme_rust_example.rs` as a block expression, which `tests/readme.rs` includes in an
//! async function and runs against moto. A README edit that breaks the example breaks the build.

use std::path::PathBuf;

fn main() {
    let readme = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../README.md");
    println!("cargo:rerun-if-changed={}", readme.display());
    let text = std::fs::read_to_string(&readme).expect("README.md");
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        let fence = line.trim_start();
        match current.as_mut() {
            None if fence == "```rust" => current = Some(Vec::new()),
            Some(_) if fence == "```" => blocks.push(current.take().unwrap().join("\n")),
            Some(body) => body.push(line),
            None => {}
        }
    }
    let example = blocks.first().map(String::as_str).unwrap_or("");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("readme_rust_example.rs");
    std::fs::write(out, format!("{{\n{example}\n}}\n")).unwrap();
}
