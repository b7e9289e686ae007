//! Guardrails on the proxy path with the shipped policies: request redaction reaches the
//! provider redacted; secrets are denied before the provider; streamed answers never carry a
//! value split across chunks; deny mid-stream ends the stream cleanly.

mod common;

use common::*;
use parapet::mock::{MockConfig, MockUpstream};
use serde_json::json;

fn guarded(upstream: &str, policies: &str) -> String {
    format!(
        "{}\n[policies]\ndir = \"{policies}\"\nwatch = false\n",
        passthrough_config(upstream, "", "")
    )
}

#[tokio::test]
async fn request_pii_is_redacted_before_the_provider() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let body = json!({"model": "gpt-4o", "messages": [
        {"role": "user", "content": "I am jane.doe@example.com"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "crm", "arguments": "{\"email\":\"jane.doe@example.com\"}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "phone (415) 555-0132"},
        {"role": "user", "content": "thanks"}]});
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[],
        &body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = m.requests().pop().unwrap();
    let sent = String::from_utf8_lossy(&seen.body).into_owned();
    assert!(!sent.contains("jane.doe@example.com"), "{sent}");
    assert!(!sent.contains("555-0132"), "{sent}");
    let j = seen.json().unwrap();
    let args: serde_json::Value = serde_json::from_str(
        j["messages"][1]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["email"], "[EMAIL_1]");
    assert_eq!(j["messages"][0]["content"], "I am [EMAIL_1]");
    p.shutdown().await;
}

#[tokio::test]
async fn secrets_are_denied_before_the_provider_without_echo() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let key = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
    for (path, shape_anthropic) in [("/v1/chat/completions", false), ("/v1/messages", true)] {
        let body = json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": format!("deploy with {key}")}]});
        let r = post(&format!("http://{}{path}", p.data_addr), &[], &body).await;
        assert_eq!(r.status, 400);
        assert!(!r.text().contains(key));
        assert!(r.text().contains("secrets/deny-in-request"), "{}", r.text());
        if shape_anthropic {
            assert_eq!(r.json()["type"], "error");
        } else {
            assert_eq!(r.json()["error"]["code"], "policy_violation");
        }
    }
    assert!(
        m.requests().is_empty(),
        "a denied request reached the provider"
    );
    p.shutdown().await;
}

#[tokio::test]
async fn streamed_pii_split_across_chunks_never_reaches_the_client() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let reply =
        "Sure. Her address is maria.rossi@example.org and her card 4111 1111 1111 1111, bye.";
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "stream": true, "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "m", "stream": true, "input": "x"}),
        ),
    ] {
        for chunk in ["1", "3", "7"] {
            let s = post_streamed(
                &format!("http://{}{path}", p.data_addr),
                &[("x-mock-reply", reply), ("x-mock-chunk-size", chunk)],
                &body,
            )
            .await;
            assert_eq!(s.status, 200);
            let text = String::from_utf8_lossy(&s.body()).into_owned();
            assert!(
                !text.contains("maria.rossi"),
                "{path} chunk {chunk}: {text}"
            );
            assert!(
                !text.contains("1111 1111 1111"),
                "{path} chunk {chunk}: {text}"
            );
            assert!(text.contains("[EMAIL_1]"), "{path} chunk {chunk}: {text}");
        }
    }
    p.shutdown().await;
}

/// The tokens of every chat `logprobs.content` in `v` (one answer or one chunk), joined.
fn logprob_tokens(v: &serde_json::Value) -> String {
    let mut out = String::new();
    for choice in v["choices"].as_array().into_iter().flatten() {
        for t in choice["logprobs"]["content"]
            .as_array()
            .into_iter()
            .flatten()
        {
            out.push_str(t["token"].as_str().unwrap_or_default());
            let bytes: Vec<u8> = t["bytes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|b| b.as_u64().map(|b| b as u8))
                .collect();
            assert_eq!(bytes, t["token"].as_str().unwrap().as_bytes());
        }
    }
    out
}

#[tokio::test]
async fn logprobs_never_spell_a_redacted_value() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let pii = "Sure. Her address is maria.rossi@example.org, bye.";
    let clean = "Sure. The lighthouse keeper counted ships every night.";

    // Non-streamed: a redacted answer loses its tokens; a clean one keeps them.
    let body =
        json!({"model": "m", "logprobs": true, "messages": [{"role": "user", "content": "x"}]});
    let r = post(&url, &[("x-mock-reply", pii)], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(
        j["choices"][0]["message"]["content"],
        "Sure. Her address is [EMAIL_1], bye."
    );
    assert!(j["choices"][0]["logprobs"].is_null(), "{j}");
    let r = post(&url, &[("x-mock-reply", clean)], &body).await;
    assert_eq!(
        logprob_tokens(&r.json()),
        clean,
        "a clean answer keeps its logprobs"
    );

    // Streamed, value split across chunks: no chunk's tokens carry what the guard held back.
    let body = json!({"model": "m", "stream": true, "logprobs": true,
        "messages": [{"role": "user", "content": "x"}]});
    for chunk in ["1", "3", "7"] {
        let s = post_streamed(
            &url,
            &[("x-mock-reply", pii), ("x-mock-chunk-size", chunk)],
            &body,
        )
        .await;
        assert_eq!(s.status, 200);
        let text = String::from_utf8_lossy(&s.body()).into_owned();
        let (mut content, mut tokens) = (String::new(), String::new());
        for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if data == "[DONE]" {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(data).unwrap();
            content.push_str(
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .unwrap_or_default(),
            );
            tokens.push_str(&logprob_tokens(&v));
        }
        assert_eq!(
            content, "Sure. Her address is [EMAIL_1], bye.",
            "chunk {chunk}"
        );
        assert!(
            !tokens.contains("rossi"),
            "chunk {chunk}: tokens {tokens:?}"
        );
        assert!(
            !tokens.contains("@example"),
            "chunk {chunk}: tokens {tokens:?}"
        );
    }
    p.shutdown().await;
}

#[tokio::test]
async fn deny_mid_stream_ends_cleanly_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("out.toml"),
        "[policy]\nid = \"out\"\n[[rules]]\nid = \"codename\"\nkeywords = [\"project bluebird\"]\ndirection = \"response\"\naction = \"deny\"\n",
    )
    .unwrap();
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &dir.path().display().to_string())).await;
    let reply = "The plan is called Project Bluebird and it launches soon.";
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
            "\"finish_reason\":\"content_filter\"",
        ),
        (
            "/v1/messages",
            json!({"model": "m", "stream": true, "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}),
            "\"stop_reason\":\"refusal\"",
        ),
        (
            "/v1/responses",
            json!({"model": "m", "stream": true, "input": "x"}),
            "response.incomplete",
        ),
    ];
    for (path, body, marker) in cases {
        let s = post_streamed(
            &format!("http://{}{path}", p.data_addr),
            &[("x-mock-reply", reply), ("x-mock-chunk-size", "2")],
            &body,
        )
        .await;
        let text = String::from_utf8_lossy(&s.body()).into_owned();
        assert!(!text.to_lowercase().contains("bluebird"), "{path}: {text}");
        assert!(text.contains(marker), "{path}: {text}");
        if path == "/v1/chat/completions" {
            assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
        }
        if path == "/v1/messages" {
            assert!(text.contains("message_stop"), "{text}");
        }
    }
    // Non-streamed: the answer is replaced by a provider-shaped error naming the rule.
    let r = post(
        &format!("http://{}/v1/chat/completions", p.data_addr),
        &[("x-mock-reply", reply)],
        &json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("out/codename"));
    assert!(!r.text().to_lowercase().contains("bluebird"));
    p.shutdown().await;
}

/// The `data` JSON of every event of an SSE body.
fn sse_events(body: &str) -> Vec<serde_json::Value> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// Anthropic extended thinking is model output: a value in a `thinking` block is redacted
/// like one in the answer (streamed, split across deltas, and not streamed), the block keeps
/// its signature, the held-back thinking text goes out before the signature, and a deny
/// rule matching in thinking ends the stream cleanly.
#[tokio::test]
async fn anthropic_thinking_is_guarded_like_the_answer() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let thinking = "The user is maria.rossi@example.org; her card is 4111 1111 1111 1111.";
    let url = format!("http://{}/v1/messages", p.data_addr);
    let body = json!({"model": "m", "stream": true, "max_tokens": 100,
                      "thinking": {"type": "enabled", "budget_tokens": 1024},
                      "messages": [{"role": "user", "content": "x"}]});
    for chunk in ["1", "3", "7"] {
        let s = post_streamed(
            &url,
            &[
                ("x-mock-thinking", thinking),
                ("x-mock-reply", "Done."),
                ("x-mock-chunk-size", chunk),
            ],
            &body,
        )
        .await;
        assert_eq!(s.status, 200);
        let text = String::from_utf8_lossy(&s.body()).into_owned();
        assert!(!text.contains("maria.rossi"), "chunk {chunk}: {text}");
        assert!(!text.contains("1111 1111 1111"), "chunk {chunk}: {text}");
        let events = sse_events(&text);
        let mut shown = String::new();
        let mut answer = String::new();
        let mut signature_at = None;
        let mut last_thinking_at = 0;
        for (i, e) in events.iter().enumerate() {
            let d = &e["delta"];
            match d["type"].as_str() {
                Some("thinking_delta") => {
                    shown.push_str(d["thinking"].as_str().unwrap());
                    last_thinking_at = i;
                }
                Some("signature_delta") => signature_at = Some(i),
                Some("text_delta") => answer.push_str(d["text"].as_str().unwrap()),
                _ => {}
            }
        }
        assert!(shown.contains("[EMAIL_1]"), "chunk {chunk}: {shown}");
        assert!(shown.starts_with("The user is "), "{shown}");
        assert!(shown.ends_with('.'), "{shown}");
        let signature_at = signature_at.expect("the signature is relayed");
        assert!(last_thinking_at < signature_at, "chunk {chunk}: {text}");
        assert_eq!(answer, "Done.");
    }

    // Not streamed: the thinking block's text is redacted, its signature kept.
    let r = post(
        &url,
        &[("x-mock-thinking", thinking), ("x-mock-reply", "Done.")],
        &json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let block = &v["content"][0];
    assert_eq!(block["type"], "thinking");
    let t = block["thinking"].as_str().unwrap();
    assert!(!t.contains("maria.rossi") && t.contains("[EMAIL_1]"), "{t}");
    assert!(block["signature"].as_str().unwrap().starts_with("EqMock"));
    assert_eq!(v["content"][1]["text"], "Done.");
    p.shutdown().await;

    // A deny rule that matches only in thinking ends the stream in Anthropic's format.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("out.toml"),
        "[policy]\nid = \"out\"\n[[rules]]\nid = \"codename\"\nkeywords = [\"project bluebird\"]\ndirection = \"response\"\naction = \"deny\"\n",
    )
    .unwrap();
    let p = start(&guarded(&m.url(), &dir.path().display().to_string())).await;
    let url = format!("http://{}/v1/messages", p.data_addr);
    let s = post_streamed(
        &url,
        &[
            (
                "x-mock-thinking",
                "Recall Project Bluebird before answering.",
            ),
            ("x-mock-reply", "Done."),
            ("x-mock-chunk-size", "2"),
        ],
        &body,
    )
    .await;
    let text = String::from_utf8_lossy(&s.body()).into_owned();
    assert!(!text.to_lowercase().contains("bluebird"), "{text}");
    assert!(text.contains("\"stop_reason\":\"refusal\""), "{text}");
    assert!(text.contains("message_stop"), "{text}");
    p.shutdown().await;
}

/// Tool definitions are the developer's text, like a system prompt: a credential pasted in
/// a tool's description is denied before the provider (chat, Responses, Anthropic), and
/// personal data in a parameter's description reaches the provider redacted, the schema
/// intact.
#[tokio::test]
async fn tool_definitions_are_guarded_like_the_system_prompt() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let key = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
    let desc = format!("Deploy the service. Use token {key} for the registry.");
    let schema = json!({"type": "object", "properties": {"to": {"type": "string",
        "description": "Escalations go to ops.lead@example.com"}}});
    let cases = [
        (
            "/v1/chat/completions",
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"type": "function", "function": {"name": "deploy", "description": desc, "parameters": schema}}]}),
        ),
        (
            "/v1/responses",
            json!({"model": "m", "input": "hi",
                   "tools": [{"type": "function", "name": "deploy", "description": desc, "parameters": schema}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
                   "tools": [{"name": "deploy", "description": desc, "input_schema": schema}]}),
        ),
    ];
    for (path, body) in &cases {
        let r = post(&format!("http://{}{path}", p.data_addr), &[], body).await;
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(!r.text().contains(key), "{path}");
        assert!(
            r.text().contains("secrets/deny-in-request"),
            "{path}: {}",
            r.text()
        );
    }
    assert!(
        m.requests().is_empty(),
        "a denied request reached the provider"
    );

    for (path, body) in cases {
        let mut body = body;
        let tool = &mut body["tools"][0];
        if tool.get("function").is_some() {
            tool["function"]["description"] = json!("Deploy the service.");
        } else {
            tool["description"] = json!("Deploy the service.");
        }
        let r = post(&format!("http://{}{path}", p.data_addr), &[], &body).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let seen = m.requests().pop().unwrap();
        let sent = seen.json().unwrap();
        let t = &sent["tools"][0];
        let schema = t
            .get("input_schema")
            .or_else(|| t.get("parameters"))
            .or_else(|| t["function"].get("parameters"))
            .unwrap();
        assert_eq!(
            schema["properties"]["to"]["description"], "Escalations go to [EMAIL_1]",
            "{path}: {sent}"
        );
        assert_eq!(schema["properties"]["to"]["type"], "string");
    }
    p.shutdown().await;
}

#[tokio::test]
async fn an_answer_too_large_to_read_is_not_relayed_unread() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let toml = format!(
        "{}\n[policies]\ndir = \"{}\"\nwatch = false\n",
        passthrough_config(&m.url(), "max_response_bytes = 2000", ""),
        shipped_policies()
    );
    let p = start(&toml).await;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
    // Under the limit: inspected and relayed.
    let r = post(&url, &[("x-mock-reply", "a short answer")], &body).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Over it (an email hides at the end, past what could be read): 502, never the text.
    let long = format!("{} mail me at jane.doe@example.com", "word ".repeat(600));
    let r = post(&url, &[("x-mock-reply", long.as_str())], &body).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "response_uninspectable");
    assert!(!r.text().contains("jane.doe"));
    // A stream of the same answer is guarded as it flows, whatever its length.
    let mut sbody = body.clone();
    sbody["stream"] = true.into();
    let r = post(&url, &[("x-mock-reply", long.as_str())], &sbody).await;
    assert_eq!(r.status, 200);
    assert!(!r.text().contains("jane.doe@example.com"), "{}", r.text());
    p.shutdown().await;
}

/// A repeated key lets the guard read one value and a provider or SDK that keeps the first
/// read the other: such bodies are refused (request: 400 before anything is forwarded;
/// answer: 502), never passed on. Before, `"content": "<secret>", "content": "hi"` reached
/// the provider with the secret (the guard read "hi").
#[tokio::test]
async fn bodies_with_a_repeated_key_are_refused_not_guessed() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let key = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
    let chat = format!("http://{}/v1/chat/completions", p.data_addr);
    let bodies = [
        (
            chat.clone(),
            format!(
                r#"{{"model":"gpt-4o-mini","messages":[{{"role":"user","content":"deploy with {key}","content":"hi"}}]}}"#
            ),
        ),
        (
            chat.clone(),
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"messages":[]}"#
                .to_string(),
        ),
        (
            format!("http://{}/v1/messages", p.data_addr),
            format!(
                r#"{{"model":"c","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"text","text":"{key}","text":"hi"}}]}}]}}"#
            ),
        ),
    ];
    for (url, body) in &bodies {
        let r = send(
            http::Method::POST,
            url,
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(r.text().contains("repeats a key"), "{}", r.text());
        assert!(!r.text().contains(key));
    }
    assert!(m.requests().is_empty(), "nothing forwarded");
    // The same key in different objects is ordinary JSON.
    let ok = json!({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}]});
    assert_eq!(post(&chat, &[], &ok).await.status, 200);
    // An answer repeating a key: 502, not the answer.
    let answer = r#"{"id":"x","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"mail jane.doe@example.com","content":"ok"},"finish_reason":"stop"}]}"#;
    let r = post(
        &chat,
        &[("x-mock-status", "200"), ("x-mock-body", answer)],
        &ok,
    )
    .await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(!r.text().contains("jane.doe"));
    p.shutdown().await;
}

/// A provider's error answer can quote the request ("'…' is not one of …"): with response
/// rules on, it is read like an answer — values redacted in place, status and error shape
/// kept (OpenAI and Anthropic), text error pages read whole. Before, non-2xx answers were
/// relayed unread.
#[tokio::test]
async fn provider_error_bodies_never_carry_a_protected_value() {
    let m = MockUpstream::start(MockConfig::default()).await.unwrap();
    let p = start(&guarded(&m.url(), &shipped_policies())).await;
    let body = json!({"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let key = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
    let openai = format!(
        r#"{{"error":{{"message":"'jane.doe@example.com' is not one of ['system', 'user'] - 'messages.0.role' ({key})","type":"invalid_request_error","param":null,"code":null}}}}"#
    );
    let anthropic = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages.0: unexpected role \"jane.doe@example.com\""}}"#;
    let cases = [
        ("/v1/chat/completions", "400", openai.as_str()),
        ("/v1/messages", "422", anthropic),
        (
            "/v1/chat/completions",
            "503",
            "<html>upstream for jane.doe@example.com failed</html>",
        ),
    ];
    for (path, status, error) in cases {
        let url = format!("http://{}{path}", p.data_addr);
        let r = post(
            &url,
            &[("x-mock-status", status), ("x-mock-body", error)],
            &body,
        )
        .await;
        assert_eq!(r.status.as_str(), status, "{}", r.text());
        let text = r.text();
        assert!(!text.contains("jane.doe@example.com"), "{text}");
        assert!(!text.contains(key), "{text}");
        assert!(text.contains("[EMAIL_1]"), "{text}");
        if error.starts_with('{') {
            let (got, sent): (serde_json::Value, serde_json::Value) =
                (r.json(), serde_json::from_str(error).unwrap());
            assert_eq!(got["error"]["type"], sent["error"]["type"]);
            assert_eq!(got.get("type"), sent.get("type"));
        }
    }
    // A clean error body is relayed byte for byte.
    let clean = r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#;
    let url = format!("http://{}/v1/chat/completions", p.data_addr);
    let r = post(
        &url,
        &[("x-mock-status", "429"), ("x-mock-body", clean)],
        &body,
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.text(), clean);
    p.shutdown().await;
}
