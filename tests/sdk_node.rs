//! Runs the official Node SDKs (`openai`, `@anthropic-ai/sdk`; `tests/sdk-node`) against an
//! in-process Parapet (shipped policies plus a response-side deny rule) in front of the
//! in-process mock, so `cargo test` checks the Node clients the deployment docs point at.
//!
//! Needs `node` and `tests/sdk-node/node_modules` (`cd tests/sdk-node && npm ci`). With
//! `CI=true` a missing prerequisite fails the test; otherwise it is skipped with a message.

mod common;

use common::*;
use std::path::Path;

fn in_ci() -> bool {
    matches!(
        std::env::var("CI")
            .unwrap_or_default()
            .to_lowercase()
            .as_str(),
        "1" | "true" | "yes"
    )
}

const DENY_POLICY: &str = r#"[policy]
id = "output"
[[rules]]
id = "codename"
keywords = ["project bluebird"]
direction = "response"
action = "deny"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_sdks_through_parapet() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk-node");
    let node = std::env::var("PARAPET_NODE").unwrap_or_else(|_| "node".into());
    let probe = tokio::process::Command::new(&node)
        .arg("--version")
        .output()
        .await;
    let missing = match probe {
        Ok(o) if o.status.success() => (!dir.join("node_modules/openai").exists()
            || !dir.join("node_modules/@anthropic-ai/sdk").exists())
        .then(|| "tests/sdk-node/node_modules is not installed".to_string()),
        Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Some(format!("cannot run {node}: {e}")),
    };
    if let Some(why) = missing {
        if in_ci() {
            panic!("CI=true but the Node SDK test prerequisites are missing: {why}");
        }
        eprintln!(
            "SKIPPED official_node_sdks_through_parapet: {why}\ninstall: cd tests/sdk-node && npm ci"
        );
        return;
    }
    let mock = parapet::mock::MockUpstream::start(parapet::mock::MockConfig::default())
        .await
        .unwrap();
    let pol = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(shipped_policies()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            std::fs::copy(&p, pol.path().join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(pol.path().join("output.toml"), DENY_POLICY).unwrap();
    let toml = format!(
        "{}\n[policies]\ndir = \"{}\"\nwatch = false\n",
        passthrough_config(&mock.url(), "", ""),
        pol.path().display()
    );
    let p = start(&toml).await;
    let run = tokio::process::Command::new(&node)
        .arg("sdk.test.mjs")
        .arg(format!("http://{}", p.data_addr))
        .current_dir(&dir)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the Node SDK suite finishes within 120 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the Node SDK suite failed:\n{stdout}");
    assert!(stdout.contains("all checks passed"), "{stdout}");
    p.shutdown().await;
}
