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
    ("tls", &[]),
    ("aws", &[]),
    ("payload", &["domain"]),
    ("store", &["domain", "retry", "telemetry"]),
    ("graph", &["domain", "secret", "retry", "tls", "telemetry"]),
    ("signature", &["secret"]),
    ("verification", &["secret"]),
    (
        "config",
        &["domain", "graph", "store", "secret", "telemetry"],
    ),
    ("inbound", &["domain", "payload", "store", "graph", "retry"]),
    ("sync", &["domain", "graph", "store", "config", "retry"]),
    (
        "outbound",
        &[
            "domain",
            "graph",
            "store",
            "config",
            "retry",
            "telemetry",
            "aws",
        ],
    ),
    (
        "media",
        &[
            "domain",
            "graph",
            "store",
            "config",
            "retry",
            "telemetry",
            "aws",
        ],
    ),
    (
        "publish",
        &["domain", "payload", "store", "config", "retry", "telemetry"],
    ),
    (
        "webhook",
        &[
            "media",
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

/// The file's module path below the crate root: `store/sends.rs` → `[store, sends]`,
/// `store/mod.rs` → `[store]`, `retry.rs` → `[retry]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).expect("under src");
    let mut parts: Vec<String> = rel
        .components()
        .filter_map(|c| c.as_os_str().to_str())
        .map(|c| c.trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

fn ident(text: &str) -> String {
    text.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// The names right after `prefix` in `text`: `crate::a` gives `a`; `crate::{a, b::c}` gives `a`, `b`.
fn names_after(text: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(prefix) {
        let after = &rest[i + prefix.len()..];
        if let Some(list) = after.strip_prefix('{') {
            // A brace list: every top-level name in it (nested lists belong to those names).
            let mut depth = 0;
            let mut item_start = true;
            for (j, c) in list.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        item_start = false;
                        let name = ident(&list[j..]);
                        if !name.is_empty() && name != "self" {
                            out.push(name);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(after);
            if !name.is_empty() && name != "super" {
                out.push(name);
            }
        }
        rest = after;
    }
    out
}

/// Every top-level module of ours that `code` (one file's code, at `module`) names: through
/// `crate::`, or through as many `super::` as it takes to reach the crate root.
fn roots_named(code: &str, module: &[String]) -> Vec<String> {
    let mut out = names_after(code, "crate::");
    if !module.is_empty() {
        let to_root = "super::".repeat(module.len());
        out.extend(
            names_after(code, &to_root)
                .into_iter()
                .filter(|n| n != "super"),
        );
    }
    out
}

/// The file's code without its unit tests or comments: the code ends at a `#[cfg(test)]` that opens
/// an inline module; a `#[cfg(test)] mod x;` declaration only skips itself.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut code = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // Skip further attributes to the item itself.
            let mut j = i + 1;
            while lines
                .get(j)
                .is_some_and(|l| l.trim_start().starts_with("#["))
            {
                j += 1;
            }
            if lines.get(j).is_some_and(|l| l.trim_end().ends_with('{')) {
                break;
            }
            i = j + 1;
            continue;
        }
        // Comments (and doc links) are not dependencies.
        code.push_str(lines[i].split("//").next().unwrap_or(""));
        code.push('\n');
        i += 1;
    }
    code
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
        if tests.contains(file) {
            continue;
        }
        let rel = file
            .strip_prefix(src())
            .unwrap_or(file)
            .display()
            .to_string();
        let text = std::fs::read_to_string(file).expect("read a source file");
        if file.ends_with("lib.rs") {
            // The root declares modules; a `use` there would let any module reach anything.
            if text
                .lines()
                .any(|l| l.trim_start().starts_with("use ") || l.contains("pub use"))
            {
                violations.push(format!("{rel}: lib.rs only declares modules"));
            }
            continue;
        }
        let top = top_module(file);
        let Some(may_use) = allowed.get(top.as_str()) else {
            violations.push(format!(
                "{rel}: module `{top}` is not in the layering table (shared/tests/layering.rs, docs/architecture.md): add it"
            ));
            continue;
        };
        checked += 1;
        for used in roots_named(&code_of(&text), &module_path(file)) {
            if used != top && !may_use.contains(&used.as_str()) {
                let line = text
                    .lines()
                    .position(|l| l.contains(used.as_str()) && !l.trim_start().starts_with("//"))
                    .map_or(0, |n| n + 1);
                violations.push(format!(
                    "{rel}:{line}: `{top}` uses `{used}`, which is not below it"
                ));
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
fn the_checker_sees_every_way_of_naming_a_module_above() {
    let store = src().join("store").join("messages.rs");
    assert_eq!(top_module(&store), "store");
    assert_eq!(module_path(&store), ["store", "messages"]);
    assert_eq!(module_path(&src().join("store").join("mod.rs")), ["store"]);
    let at = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let code = code_of(concat!(
        "use crate::inbound::plan::InboundMessage; // crate::comment\n",
        "use crate::{payload::MessageContent, domain::{ids, time}, self};\n",
        "use super::super::outbound::Sender;\n",
        "use super::attrs;\n",
        "#[cfg(test)]\n",
        "mod properties;\n",
        "pub use crate::webhook::X;\n",
        "#[cfg(test)]\n",
        "mod tests {\n",
        "    use crate::telemetry::Metrics;\n",
        "}\n",
    ));
    assert_eq!(
        roots_named(&code, &at(&["store", "messages"])),
        ["inbound", "payload", "domain", "webhook", "outbound"],
        "crate:: paths, brace lists and super:: up to the root count; comments and tests do not"
    );
    assert_eq!(
        roots_named("use super::inbound::plan;", &at(&["store"])),
        ["inbound"]
    );
    assert!(roots_named("use super::attrs;", &at(&["store", "messages"])).is_empty());
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    assert!(!allowed["store"].contains(&"inbound"));
    assert!(!allowed["domain"].contains(&"payload"));
}
