//! Driving `scripts/dev.sh` as a user does, for the tests of the local stack and of the README:
//! where the repository and the prebuilt binaries are, its state directory (`dev.env`, pid files),
//! and a guard that stops whatever a failed test left running.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The repository's root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `scripts/test.sh` put the stack's binaries, so that no build runs inside a test.
pub fn bin_dir() -> String {
    std::env::var("WAHOOK_DEV_BIN_DIR").unwrap_or_else(|_| {
        panic!(
            "WAHOOK_DEV_BIN_DIR is not set: scripts/test.sh builds the local stack's binaries and sets it; \
             run the tests with scripts/test.sh"
        )
    })
}

/// `scripts/dev.sh ARGS` with its state in `state`, away from the test run's own moto.
pub fn dev_sh(state: &Path, args: &[&str]) -> Output {
    Command::new("bash")
        .arg(root().join("scripts/dev.sh"))
        .args(args)
        .env("WAHOOK_DEV_DIR", state)
        .env("WAHOOK_DEV_BIN_DIR", bin_dir())
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/dev.sh")
}

/// stdout then stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `KEY=VALUE` lines of `dev.env` (DESIGN §6).
pub fn dev_env(state: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(state.join("dev.env"))
        .expect("dev.env exists while the stack is up")
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

/// The PIDs the stack recorded for what it started.
pub fn pids(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("pids"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .map(|p| p.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn alive(pid: &str) -> bool {
    Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A failing test must not leave the stack running: stop whatever the state directory lists.
pub struct StopLeftovers(pub PathBuf);

impl Drop for StopLeftovers {
    fn drop(&mut self) {
        for pid in pids(&self.0) {
            if alive(&pid) {
                let _ = Command::new("kill").arg(&pid).status();
            }
        }
        // Keep the logs of a failed run for whoever reads the failure.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A process a test started, stopped (by its own handle) however the test ends.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A fresh state directory for one stack.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wahook-e2e-{name}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
