//! Lifecycle: client disconnect cancels the upstream request; graceful drain lets in-flight
//! streams finish, flips readiness and refuses new connections; the drain deadline holds;
//! the binary exits 0 on SIGTERM.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http_body_util::BodyExt;
use parapet::mock::{MockConfig, MockUpstream};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that streams SSE events every 20 ms forever and reports when a write fails
/// (the proxy closed the upstream connection).
async fn endless_upstream() -> (String, tokio::sync::oneshot::Receiver<Duration>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 65536];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await
            .unwrap();
        let t0 = Instant::now();
        for i in 0..5000u32 {
            let ev = format!("data: {{\"n\":{i}}}\n\n");
            let chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
            if s.write_all(chunk.as_bytes()).await.is_err() || s.flush().await.is_err() {
                let _ = tx.send(t0.elapsed());
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    (url, rx)
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    let (url, gone) = endless_upstream().await;
    let p = start(&passthrough_config(&url, "", "")).await;
    let req = http::Request::post(format!("http://{}/v1/chat/completions", p.data_addr))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"model": "m", "stream": true, "messages": []}).to_string(),
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    drop(body); // the client goes away mid-stream
    let elapsed = tokio::time::timeout(Duration::from_secs(5), gone)
        .await
        .expect("upstream connection must be closed after the client left")
        .unwrap();
    assert!(elapsed < Duration::from_secs(5));
    p.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_streams() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&passthrough_config(
        &m.url(),
        "drain_timeout_ms = 10000",
        "",
    ))
    .await;
    let data = p.data_addr;
    let admin = p.admin_addr;
    let req = http::Request::post(format!("http://{data}/v1/chat/completions"))
        .header("content-type", "application/json")
        .header("x-mock-chunk-delay-ms", "60")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "drain me gently please"}]}).to_string(),
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    got.extend_from_slice(&body.frame().await.unwrap().unwrap().into_data().unwrap());

    let shutdown = tokio::spawn(p.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Readiness flips while draining; the admin listener is still up for probes.
    let r = send(
        http::Method::GET,
        &format!("http://{admin}/readyz"),
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 503);
    // New connections are refused.
    assert!(tokio::net::TcpStream::connect(data).await.is_err());
    assert!(!shutdown.is_finished());
    // The in-flight stream runs to its end.
    while let Some(f) = body.frame().await {
        got.extend_from_slice(&f.unwrap().into_data().unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.contains("data: [DONE]"),
        "stream cut during drain: {text}"
    );
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .expect("shutdown finishes once the stream ended")
        .unwrap();
}

#[tokio::test]
async fn drain_deadline_bounds_shutdown() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&passthrough_config(&m.url(), "drain_timeout_ms = 300", "")).await;
    let req = http::Request::post(format!("http://{}/v1/chat/completions", p.data_addr))
        .header("x-mock-chunk-delay-ms", "500")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "a very long and slow answer"}]}).to_string(),
        )))
        .unwrap();
    let resp = client().request(req).await.unwrap();
    let mut body = resp.into_body();
    let _ = body.frame().await;
    let t0 = Instant::now();
    p.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn binary_exits_zero_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("parapet.toml");
    std::fs::write(&cfg, passthrough_config("http://127.0.0.1:9", "", "")).unwrap();
    let admin_port = closed_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("PARAPET_LISTEN", "127.0.0.1:0")
        .env("PARAPET_ADMIN_LISTEN", format!("127.0.0.1:{admin_port}"))
        .env("PARAPET_POLICIES_DIR", shipped_policies())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", admin_port)).await {
            s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut out = String::new();
            let _ = s.read_to_string(&mut out).await;
            if out.starts_with("HTTP/1.1 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "parapet did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let t0 = Instant::now();
    loop {
        if let Some(code) = child.try_wait().unwrap() {
            assert_eq!(code.code(), Some(0));
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn validate_reports_every_error_and_exits_nonzero() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"nope\"\n[[endpoints]]\nid = \"e\"\nkind = \"x\"\nbase_url = \"http://a\"\n[[routes]]\nid = \"r\"\nendpoint = \"missing\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["server.listen", "endpoints[0].kind", "routes[0].endpoint"] {
        assert!(err.contains(field), "{field} missing from: {err}");
    }
    assert!(err.contains("bad.toml"));
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["validate", "--config"])
        .arg(format!("{}/parapet.toml", env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// `parapet validate --policies DIR` checks a policy directory alone (no configuration
/// file): every error of every file, exit 1; the shipped directory passes.
#[test]
fn validate_policies_alone_reports_every_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.toml"),
        "[policy]\nid = \"x\"\n[[rules]]\nid = \"r\"\npattern = \"(unclosed\"\naction = \"deny\"\n[[rules]]\nid = \"r2\"\npattern = \"a.*\"\naction = \"explode\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["validate", "--policies"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "rules[1].action",
        "rules[1].max_len",
        "x/r: invalid pattern",
        "3 error(s)",
    ] {
        assert!(err.contains(want), "{want} missing from: {err}");
    }
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_parapet"))
        .args(["validate", "--policies"])
        .arg(format!("{}/policies", env!("CARGO_MANIFEST_DIR")))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("ok: "));
}

/// `parapet scan` prints each match (rule, offsets) and the redacted text, never the value
/// in the report lines; a reader that stops early (`| head`) ends it quietly, not in a panic.
#[test]
fn scan_reports_matches_and_tolerates_a_closed_pipe() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/policies");
    let run = |input: &[u8], close_stdout: bool| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parapet"))
            .args(["scan", "--policies", policies, "--direction", "response"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if close_stdout {
            drop(child.stdout.take());
        }
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let out = run(b"mail jane.doe@example.com now", false);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let (report, text) = stdout.split_once("---\n").unwrap();
    assert!(
        report.contains("match\tpii/email\tEMAIL\t5..25"),
        "{report}"
    );
    assert!(!report.contains("jane.doe"), "{report}");
    assert_eq!(text, "mail [EMAIL_1] now");

    let big = "a@b.io\n".repeat(50_000);
    let out = run(big.as_bytes(), true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
