//! Runs the official-SDK compatibility suite (`tests/sdk`, pytest with the `openai` and
//! `anthropic` packages) against the binaries cargo just built, so `cargo test` runs it too.
//!
//! Python: `$PARAPET_PYTHON`, else `.venv/bin/python` in the repo, else `python3`.
//! With `CI=true` a missing interpreter or package fails the test; otherwise it is skipped
//! with a message (install with `python3 -m venv .venv && .venv/bin/pip install -r tests/sdk/requirements.txt`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> PathBuf {
    if let Ok(p) = std::env::var("PARAPET_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("python3")
}

fn in_ci() -> bool {
    matches!(
        std::env::var("CI")
            .unwrap_or_default()
            .to_lowercase()
            .as_str(),
        "1" | "true" | "yes"
    )
}

#[test]
fn official_python_sdks_through_parapet() {
    let py = python();
    let probe = Command::new(&py)
        .args(["-c", "import openai, anthropic, pytest"])
        .output();
    let ready = matches!(&probe, Ok(o) if o.status.success());
    if !ready {
        let why = match probe {
            Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
            Err(e) => format!("cannot run {}: {e}", py.display()),
        };
        if in_ci() {
            panic!("CI=true but the SDK test prerequisites are missing: {why}");
        }
        eprintln!(
            "SKIPPED official_python_sdks_through_parapet: {why}\n\
             install: python3 -m venv .venv && .venv/bin/pip install -r tests/sdk/requirements.txt"
        );
        return;
    }
    let status = Command::new(&py)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/sdk"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PARAPET_BIN", env!("CARGO_BIN_EXE_parapet"))
        .env("PARAPET_MOCK_BIN", env!("CARGO_BIN_EXE_parapet-mock"))
        .status()
        .expect("pytest runs");
    assert!(
        status.success(),
        "the SDK suite failed (see pytest output above)"
    );
}
