//! The module graph of `wahook` points down only (docs/architecture.md, "Layers"): every `crate::x`
//! path in the library's code (tests excluded) must name the module's own top-level module or one the
//! table below allows. A new arrow that runs back up fails here with its file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use, besides itself. Keep in step with docs/architecture.md.
const ALLOWED: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("secret", &[]),
    ("retry", &[]),
    ("telemetry", &[]),
    ("aws", &[]),
    ("payload", &["domain"]),
    ("store", &["domain", "retry"]),
    ("graph", &["domain", "secret", "retry"]),
    ("signature", &["secret"]),
    ("verification", &["secret"]),
    ("config", &["domain", "graph", "store", "secret"]),
    ("inbound", &["domain", "payload", "store", "graph", "retry"]),
    (
        "outbound",
        &["domain", "graph", "store", "config", "retry", "telemetry"],
    ),
    (
        "webhook",
        &[
            "domain",
            "payload",
            "store",
            "graph",
            "retry",
            "secret",
            "signature",
            "verification",
            "config",
            "inbound",
            "telemetry",
            "aws",
        ],
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read shared/src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files that are test modules as a whole: declared right after `#[cfg(test)]`, by name or by
/// `#[path]`.
fn test_only_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read a source file");
        let dir = file.parent().expect("a file has a directory");
        // `mod x;` in `a/b.rs` means `a/b/x.rs`; in `a/mod.rs` or `lib.rs`, `a/x.rs`.
        let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        let child_dir = if stem == "mod" || stem == "lib" {
            dir.to_path_buf()
        } else {
            dir.join(stem)
        };
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            if *line != "#[cfg(test)]" {
                continue;
            }
            let next: Vec<&str> = lines.iter().skip(i + 1).take(2).copied().collect();
            if let Some(path) = next
                .first()
                .and_then(|l| l.strip_prefix("#[path = \""))
                .and_then(|l| l.strip_suffix("\"]"))
            {
                out.insert(dir.join(path));
            } else if let Some(name) = next
                .first()
                .and_then(|l| l.strip_prefix("mod "))
                .and_then(|l| l.strip_suffix(';'))
            {
                out.insert(child_dir.join(format!("{name}.rs")));
            }
        }
    }
    out
}

/// The top-level module a file belongs to: `store/sends.rs` → `store`, `retry.rs` → `retry`.
fn top_module(file: &Path) -> String {
    let rel = file.strip_prefix(src()).expect("under src");
    let first = rel
        .components()
        .next()
        .and_then(|c| c.as_os_str().to_str())
        .expect("a path component");
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::name` in `line`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // `crate::{a, b}` is not used in this code base; a name is required.
        if !name.is_empty() {
            out.push(name);
        }
        rest = after;
    }
    out
}

#[test]
fn no_module_uses_one_above_it() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let tests = test_only_files(&files);
    let mut violations = Vec::new();
    let mut checked = 0;
    for file in &files {
        if tests.contains(file) || file.ends_with("lib.rs") {
            continue;
        }
        let top = top_module(file);
        let Some(may_use) = allowed.get(top.as_str()) else {
            violations.push(format!(
                "{}: module `{top}` is not in the layering table (tests/layering.rs, docs/architecture.md): add it",
                file.display()
            ));
            continue;
        };
        checked += 1;
        let text = std::fs::read_to_string(file).expect("read a source file");
        for (n, line) in text.lines().enumerate() {
            // The code ends where its unit tests begin.
            if line.starts_with("#[cfg(test)]") {
                break;
            }
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in crate_paths(line) {
                if used != top && !may_use.contains(&used.as_str()) {
                    violations.push(format!(
                        "{}:{}: `{top}` uses `crate::{used}`, which is not below it: {}",
                        file.strip_prefix(src()).unwrap_or(file).display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        checked > 40,
        "only {checked} files checked: is the walk broken?"
    );
    assert!(
        violations.is_empty(),
        "arrows that run back up (move the shared type down, see docs/architecture.md):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_an_arrow_that_runs_back_up() {
    assert_eq!(
        crate_paths("use crate::inbound::plan::InboundMessage; // crate::x"),
        ["inbound", "x"]
    );
    let store = src().join("store").join("messages.rs");
    assert_eq!(top_module(&store), "store");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    assert!(!allowed["store"].contains(&"inbound"));
    assert!(!allowed["domain"].contains(&"payload"));
}
