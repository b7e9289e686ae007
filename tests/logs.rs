//! Logs never carry request data: with a TRACE-level subscriber capturing everything (text and
//! JSON formats, every crate), calls carrying secrets and PII in prompts, headers and
//! credentials leave none of those values — and no request body text — in the logs, while
//! the rule ids of the violations are logged.
//!
//! One test in this binary: the subscriber is process-global (the server's tasks run on
//! other worker threads), installed once.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use parapet::mock::{MockConfig, MockUpstream};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const GITHUB_TOKEN: &str = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
const AWS_KEY: &str = "AKIAQ4ZJ7XW2MRT5KB3N";
const EMAIL: &str = "jane.doe@example.com";
const PHONE: &str = "(415) 555-0132";
const CARD: &str = "4111 1111 1111 1111";
const SSN: &str = "536-22-1987";
const BEARER: &str = "sk-client-bearer-Zq81hTpw0Lr";
const API_KEY: &str = "sk-ant-client-xapikey-Mv27QpX";
const BODY_MARKER: &str = "Chrysanthemum-Marmalade-7731";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_carry_rule_ids_but_no_secrets_pii_credentials_or_body_text() {
    let capture = Capture::default();
    let text_writer = capture.clone();
    let json_writer = capture.clone();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(move || text_writer.clone()),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(move || json_writer.clone()),
        );
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let cfg = format!(
        "{}\n[policies]\ndir = \"{}\"\nwatch = false\n",
        passthrough_config(&m.url(), "overhead_header = true", ""),
        shipped_policies()
    );
    let p = start(&cfg).await;
    let chat = format!("http://{}/v1/chat/completions", p.data_addr);
    let messages = format!("http://{}/v1/messages", p.data_addr);
    let creds = [
        ("authorization", &*format!("Bearer {BEARER}")),
        ("x-api-key", API_KEY),
    ];
    let creds: Vec<(&str, &str)> = creds.iter().map(|(k, v)| (*k, *v)).collect();

    // Redacted PII on the request side (plain and streamed), with body text around it.
    let pii = format!("{BODY_MARKER}: mail {EMAIL}, call {PHONE}, card {CARD}, ssn {SSN}");
    let r = post(
        &chat,
        &creds,
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": pii}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let s = post_streamed(
        &chat,
        &creds,
        &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": pii}]}),
    )
    .await;
    assert_eq!(s.status, 200);
    // Secrets: denied before the provider (both API shapes).
    for (url, key) in [(&chat, GITHUB_TOKEN), (&messages, AWS_KEY)] {
        let r = post(
            url,
            &creds,
            &json!({"model": "m", "max_tokens": 16, "messages": [{"role": "user",
                "content": format!("{BODY_MARKER} deploy with {key}")}]}),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text());
    }
    // Response side: the provider answers with PII and a secret (plain and streamed).
    let reply = format!("{BODY_MARKER} reach me at {EMAIL}, token {GITHUB_TOKEN}");
    let mut reply_headers = creds.clone();
    reply_headers.push(("x-mock-reply", &reply));
    let r = post(
        &chat,
        &reply_headers,
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains(EMAIL), "{}", r.text());
    let s = post_streamed(
        &chat,
        &reply_headers,
        &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hello"}]}),
    )
    .await;
    assert_eq!(s.status, 200);
    // Errors: invalid JSON carrying a secret, an upstream failure.
    let r = send(
        http::Method::POST,
        &chat,
        &[("content-type", "application/json")],
        format!("{{\"model\": \"m\", \"messages\": \"{BODY_MARKER} {GITHUB_TOKEN}"),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    let mut failing = creds.clone();
    failing.push(("x-mock-status", "503"));
    let r = post(
        &chat,
        &failing,
        &json!({"model": "m", "messages": [{"role": "user", "content": pii}]}),
    )
    .await;
    assert_eq!(r.status, 503);

    p.shutdown().await;
    m.shutdown().await;
    let logs = capture.text();
    assert!(!logs.is_empty(), "nothing captured");
    for needle in [
        GITHUB_TOKEN,
        AWS_KEY,
        EMAIL,
        PHONE,
        "555-0132",
        CARD,
        // Card fragments (a bare "4111" also occurs in timestamps' microseconds).
        "4111 1111",
        "41111111",
        SSN,
        BEARER,
        API_KEY,
        BODY_MARKER,
        "Chrysanthemum",
    ] {
        if let Some(at) = logs.find(needle) {
            let from = logs[..at].rfind('\n').map_or(0, |i| i + 1);
            let to = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
            panic!("{needle:?} in the logs: {}", &logs[from..to]);
        }
    }
    for rule in [
        "secrets/deny-in-request",
        "secrets/redact-in-response",
        "pii/email",
        "pii/phone",
        "pii/credit-card",
        "pii/us-ssn",
    ] {
        assert!(logs.contains(rule), "rule id {rule} not logged:\n{logs}");
    }
}
