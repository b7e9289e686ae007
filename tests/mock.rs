//! End-to-end tests of the mock upstream (`parapet::mock`) over real HTTP/1.1 and h2c connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parapet::mock::{MockConfig, MockUpstream};
use serde_json::{json, Value};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
    /// Number of body frames received (SSE events arrive as separate frames).
    frames: usize,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// `(event name, data)` pairs of an SSE body.
    fn events(&self) -> Vec<(Option<String>, String)> {
        let text = std::str::from_utf8(&self.body).unwrap();
        assert!(
            text.ends_with("\n\n"),
            "SSE body must end with a blank line"
        );
        text.split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let mut name = None;
                let mut data = String::new();
                for line in e.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    } else {
                        panic!("unexpected SSE line {line:?}");
                    }
                }
                (name, data)
            })
            .collect()
    }

    fn event_json(&self) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|(_, d)| d != "[DONE]")
            .map(|(_, d)| serde_json::from_str(&d).unwrap())
            .collect()
    }
}

async fn send(
    client: &HttpClient,
    method: Method,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Reply {
    let mut b = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let body = body.map(|v| v.to_string()).unwrap_or_default();
    let resp = client
        .request(b.body(Full::new(Bytes::from(body))).unwrap())
        .await
        .unwrap();
    let (parts, mut incoming) = resp.into_parts();
    let mut buf = Vec::new();
    let mut frames = 0;
    while let Some(frame) = incoming.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            frames += 1;
            buf.extend_from_slice(&data);
        }
    }
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: buf.into(),
        frames,
    }
}

async fn post(mock: &MockUpstream, path: &str, headers: &[(&str, &str)], body: Value) -> Reply {
    send(
        &client(),
        Method::POST,
        format!("{}{path}", mock.url()),
        headers,
        Some(body),
    )
    .await
}

async fn start() -> MockUpstream {
    MockUpstream::start(MockConfig::default()).await.unwrap()
}

fn chat_body(text: &str) -> Value {
    json!({"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": text}
    ]})
}

fn weather_tool() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}])
}

#[tokio::test]
async fn chat_plain_echoes_last_user_message() {
    let mock = start().await;
    let r = post(
        &mock,
        "/v1/chat/completions",
        &[],
        chat_body("my email is a@b.co"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert!(r.headers.contains_key("x-request-id"));
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "You said: my email is a@b.co"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64().unwrap(),
        u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap()
    );
    mock.shutdown().await;
}

#[tokio::test]
async fn chat_stream_splits_reply_into_chunks_and_ends_with_done() {
    let mock = start().await;
    let mut body = chat_body("0123456789");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-chunk-size", "3")],
        body,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = r.events();
    assert_eq!(events.last().unwrap().1, "[DONE]");
    assert!(events.iter().all(|(name, _)| name.is_none()));
    assert!(r.frames >= events.len(), "one frame per event");
    let chunks = r.event_json();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let pieces: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(pieces.concat(), "You said: 0123456789");
    assert!(pieces.iter().all(|p| p.chars().count() <= 3));
    assert!(pieces.len() >= 7);
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish["usage"].is_null());
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk" && c["id"] == chunks[0]["id"]));
    mock.shutdown().await;
}

#[tokio::test]
async fn chat_stream_without_include_usage_has_no_usage_field() {
    let mock = start().await;
    let mut body = chat_body("hi");
    body["stream"] = json!(true);
    let r = post(&mock, "/v1/chat/completions", &[], body).await;
    for c in r.event_json() {
        assert!(c.get("usage").is_none(), "unexpected usage in {c}");
    }
}

#[tokio::test]
async fn chat_tool_call_plain_and_streamed() {
    let mock = start().await;
    let mut body = chat_body("What's the weather in Oslo?");
    body["tools"] = weather_tool();
    let v = post(&mock, "/v1/chat/completions", &[], body.clone())
        .await
        .json();
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert!(v["choices"][0]["message"]["content"].is_null());
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["location"], "Oslo");

    body["stream"] = json!(true);
    let chunks = post(&mock, "/v1/chat/completions", &[], body)
        .await
        .event_json();
    let first = &chunks[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!(first["function"]["name"], "get_weather");
    assert!(first["id"].as_str().unwrap().starts_with("call_mock_"));
    let fragments: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    assert!(fragments.len() > 3, "arguments are streamed in fragments");
    let streamed: Value = serde_json::from_str(&fragments.concat()).unwrap();
    assert_eq!(streamed, args);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
}

#[tokio::test]
async fn chat_tool_call_forced_by_header_and_answered_after_tool_result() {
    let mock = start().await;
    let v = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-tool-call", "lookup_user")],
        chat_body("hello"),
    )
    .await
    .json();
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup_user"
    );
    let follow_up = json!({"model": "m", "tools": weather_tool(), "messages": [
        {"role": "user", "content": "weather in Oslo?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "21C sunny"}
    ]});
    let v = post(&mock, "/v1/chat/completions", &[], follow_up)
        .await
        .json();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "Tool result: 21C sunny"
    );
}

#[tokio::test]
async fn reply_override_header() {
    let mock = start().await;
    let v = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-reply", "call me at 555-0100")],
        chat_body("x"),
    )
    .await
    .json();
    assert_eq!(v["choices"][0]["message"]["content"], "call me at 555-0100");
}

#[tokio::test]
async fn responses_plain_and_streamed() {
    let mock = start().await;
    let body = json!({"model": "gpt-4o-mini", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "ping"}]}
    ]});
    let v = post(&mock, "/v1/responses", &[], body.clone()).await.json();
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(v["output"][0]["content"][0]["text"], "You said: ping");
    assert!(v["usage"]["total_tokens"].as_u64().unwrap() > 0);

    let v = post(
        &mock,
        "/v1/responses",
        &[],
        json!({"model": "m", "input": "plain string"}),
    )
    .await
    .json();
    assert_eq!(
        v["output"][0]["content"][0]["text"],
        "You said: plain string"
    );

    let mut body = body;
    body["stream"] = json!(true);
    let r = post(&mock, "/v1/responses", &[], body).await;
    let events = r.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(names.first(), Some(&"response.created"));
    assert_eq!(names.last(), Some(&"response.completed"));
    for required in [
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ] {
        assert!(names.contains(&required), "missing {required}");
    }
    let datas = r.event_json();
    for (i, (d, name)) in datas.iter().zip(&names).enumerate() {
        assert_eq!(d["type"], *name, "event name matches data.type");
        assert_eq!(d["sequence_number"], i as u64);
    }
    let text: String = datas
        .iter()
        .filter(|d| d["type"] == "response.output_text.delta")
        .map(|d| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "You said: ping");
    assert_eq!(
        datas.last().unwrap()["response"]["output"][0]["content"][0]["text"],
        "You said: ping"
    );
}

#[tokio::test]
async fn responses_function_call_plain_streamed_and_follow_up() {
    let mock = start().await;
    let tools =
        json!([{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]);
    let body = json!({"model": "m", "tools": tools, "input": "weather in Rome?"});
    let v = post(&mock, "/v1/responses", &[], body.clone()).await.json();
    let item = &v["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_weather");
    assert!(item["call_id"].as_str().unwrap().starts_with("call_mock_"));
    let args: Value = serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["location"], "Rome");

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let datas = post(&mock, "/v1/responses", &[], streamed)
        .await
        .event_json();
    assert_eq!(datas[2]["type"], "response.output_item.added");
    assert_eq!(datas[2]["item"]["arguments"], "");
    let joined: String = datas
        .iter()
        .filter(|d| d["type"] == "response.function_call_arguments.delta")
        .map(|d| d["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args);
    let done = datas
        .iter()
        .find(|d| d["type"] == "response.function_call_arguments.done")
        .unwrap();
    assert_eq!(done["arguments"].as_str().unwrap(), joined);
    assert_eq!(
        datas.last().unwrap()["response"]["output"][0]["type"],
        "function_call"
    );

    let follow_up = json!({"model": "m", "tools": tools, "input": [
        {"role": "user", "content": "weather in Rome?"},
        item,
        {"type": "function_call_output", "call_id": item["call_id"], "output": "25C"}
    ]});
    let v = post(&mock, "/v1/responses", &[], follow_up).await.json();
    assert_eq!(v["output"][0]["content"][0]["text"], "Tool result: 25C");
}

#[tokio::test]
async fn embeddings_float_and_base64() {
    let mock = start().await;
    let v = post(
        &mock,
        "/v1/embeddings",
        &[],
        json!({"model": "text-embedding-3-small", "input": ["a", "b"], "dimensions": 8}),
    )
    .await
    .json();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[1]["index"], 1);
    let floats: Vec<f32> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    assert_eq!(floats.len(), 8);

    let v = post(
        &mock,
        "/v1/embeddings",
        &[],
        json!({"model": "text-embedding-3-small", "input": "a", "dimensions": 8, "encoding_format": "base64"}),
    )
    .await
    .json();
    let b64 = v["data"][0]["embedding"].as_str().unwrap();
    let decoded = decode_base64(b64);
    assert_eq!(decoded.len(), 8 * 4);
    let from_b64: Vec<f32> = decoded
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    for (x, y) in from_b64.iter().zip(&floats) {
        assert!((x - y).abs() < 1e-6, "same vector in both encodings");
    }

    let v = post(&mock, "/v1/embeddings", &[], json!({"input": "x"}))
        .await
        .json();
    assert_eq!(v["data"][0]["embedding"].as_array().unwrap().len(), 1536);
    let r = post(&mock, "/v1/embeddings", &[], json!({"model": "m"})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

fn decode_base64(s: &str) -> Vec<u8> {
    const A: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.chars().filter(|c| *c != '=') {
        bits = (bits << 6) | A.find(c).unwrap() as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[tokio::test]
async fn completions_and_models() {
    let mock = start().await;
    let v = post(
        &mock,
        "/v1/completions",
        &[],
        json!({"model": "gpt-3.5-turbo-instruct", "prompt": "abc"}),
    )
    .await
    .json();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["choices"][0]["text"], "You said: abc");
    let r = post(
        &mock,
        "/v1/completions",
        &[],
        json!({"model": "m", "prompt": "abc", "stream": true}),
    )
    .await;
    let text: String = r
        .event_json()
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "You said: abc");
    assert_eq!(r.events().last().unwrap().1, "[DONE]");

    let r = send(
        &client(),
        Method::GET,
        format!("{}/v1/models", mock.url()),
        &[],
        None,
    )
    .await;
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert!(v["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["object"] == "model"));
}

#[tokio::test]
async fn anthropic_messages_plain_and_streamed() {
    let mock = start().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "system": "s",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hola"}]}]});
    let r = post(&mock, "/v1/messages", &[], body.clone()).await;
    assert!(r.headers.contains_key("request-id"));
    let v = r.json();
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(
        v["content"][0],
        json!({"type": "text", "text": "You said: hola"})
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert!(v["usage"]["output_tokens"].as_u64().unwrap() > 0);

    let mut body = body;
    body["stream"] = json!(true);
    let r = post(&mock, "/v1/messages", &[], body).await;
    let events = r.events();
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(names[..3], ["message_start", "content_block_start", "ping"]);
    assert_eq!(
        names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let datas = r.event_json();
    for (d, name) in datas.iter().zip(&names) {
        assert_eq!(d["type"], *name);
    }
    let text: String = datas
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| {
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "You said: hola");
    let delta = &datas[datas.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn anthropic_tool_use_plain_and_streamed() {
    let mock = start().await;
    let body = json!({"model": "c", "max_tokens": 64,
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "weather in Lisbon"}]});
    let v = post(&mock, "/v1/messages", &[], body.clone()).await.json();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(v["content"][0]["type"], "tool_use");
    assert_eq!(v["content"][0]["name"], "get_weather");
    assert_eq!(v["content"][0]["input"]["location"], "Lisbon");

    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let datas = post(&mock, "/v1/messages", &[], streamed)
        .await
        .event_json();
    assert_eq!(datas[1]["content_block"]["type"], "tool_use");
    let json_text: String = datas
        .iter()
        .filter(|d| d["type"] == "content_block_delta")
        .map(|d| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    let input: Value = serde_json::from_str(&json_text).unwrap();
    assert_eq!(input, v["content"][0]["input"]);

    let follow_up = json!({"model": "c", "max_tokens": 64, "tools": body["tools"], "messages": [
        {"role": "user", "content": "weather in Lisbon"},
        {"role": "assistant", "content": [v["content"][0]]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x", "content": "18C"}]}
    ]});
    let v = post(&mock, "/v1/messages", &[], follow_up).await.json();
    assert_eq!(v["content"][0]["text"], "Tool result: 18C");
}

#[tokio::test]
async fn fault_status_uses_provider_error_shapes() {
    let mock = start().await;
    let r = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-status", "503")],
        chat_body("x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let v = r.json();
    assert_eq!(v["error"]["type"], "server_error");
    assert!(v["error"]["message"].as_str().unwrap().contains("503"));

    let r = post(
        &mock,
        "/v1/messages",
        &[("x-mock-status", "429")],
        json!({}),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let v = r.json();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let r = post(
        &mock,
        "/v1/chat/completions",
        &[
            ("x-mock-status", "500"),
            ("x-mock-body", "{\"custom\":true}"),
        ],
        chat_body("x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json(), json!({"custom": true}));
}

#[tokio::test]
async fn unknown_path_wrong_method_and_bad_json() {
    let mock = start().await;
    let r = send(
        &client(),
        Method::GET,
        format!("{}/v2/nothing", mock.url()),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error"]["code"], "not_found");
    let r = send(
        &client(),
        Method::GET,
        format!("{}/v1/chat/completions", mock.url()),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    let r = send(
        &client(),
        Method::POST,
        format!("{}/v1/messages", mock.url()),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.json()["type"], "error");
}

#[tokio::test]
async fn delays_before_head_and_between_chunks() {
    let mock = start().await;
    let t = Instant::now();
    let r = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-delay-ms", "150")],
        chat_body("x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(t.elapsed() >= Duration::from_millis(150));

    let mut body = chat_body("abcdefgh"); // "You said: abcdefgh" = 18 chars → 5 pieces of 4
    body["stream"] = json!(true);
    let t = Instant::now();
    let r = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-chunk-delay-ms", "40")],
        body,
    )
    .await;
    let n = r.events().len();
    assert!(n >= 8);
    assert!(t.elapsed() >= Duration::from_millis(40 * (n as u64 - 1)));

    let slow = MockUpstream::start(MockConfig {
        latency: Duration::from_millis(120),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let t = Instant::now();
    post(&slow, "/v1/chat/completions", &[], chat_body("x")).await;
    assert!(t.elapsed() >= Duration::from_millis(120));
}

#[tokio::test]
async fn records_requests_and_can_be_disabled() {
    let mock = start().await;
    post(
        &mock,
        "/v1/chat/completions?api-version=1",
        &[("authorization", "Bearer sk-client")],
        chat_body("rec"),
    )
    .await;
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, Method::POST);
    assert_eq!(reqs[0].path, "/v1/chat/completions?api-version=1");
    assert_eq!(
        reqs[0].header("authorization").as_deref(),
        Some("Bearer sk-client")
    );
    assert_eq!(reqs[0].json().unwrap()["messages"][1]["content"], "rec");

    let listed = send(
        &client(),
        Method::GET,
        format!("{}/__mock/requests", mock.url()),
        &[],
        None,
    )
    .await
    .json();
    assert_eq!(listed[0]["headers"]["authorization"], "Bearer sk-client");
    assert_eq!(mock.requests().len(), 1, "introspection is not recorded");
    let r = send(
        &client(),
        Method::DELETE,
        format!("{}/__mock/requests", mock.url()),
        &[],
        None,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(mock.requests().is_empty());

    let quiet = MockUpstream::start(MockConfig {
        record: false,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    post(&quiet, "/v1/chat/completions", &[], chat_body("x")).await;
    assert!(quiet.requests().is_empty());

    let bounded = MockUpstream::start(MockConfig {
        record_limit: 2,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    for text in ["1", "2", "3"] {
        post(&bounded, "/v1/chat/completions", &[], chat_body(text)).await;
    }
    let kept: Vec<Value> = bounded
        .requests()
        .iter()
        .map(|r| r.json().unwrap()["messages"][1]["content"].clone())
        .collect();
    assert_eq!(kept, vec![json!("2"), json!("3")]);
}

#[tokio::test]
async fn serves_h2c_with_prior_knowledge() {
    let mock = start().await;
    let h2: HttpClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut body = chat_body("over h2");
    body["stream"] = json!(true);
    let r = send(
        &h2,
        Method::POST,
        format!("{}/v1/chat/completions", mock.url()),
        &[],
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let text: String = r
        .event_json()
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "You said: over h2");
}

#[tokio::test]
async fn shutdown_stops_accepting() {
    let mock = start().await;
    let addr = mock.addr();
    mock.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Sends a request and returns the raw outcome: head error, or status + body result.
async fn raw(
    mock: &MockUpstream,
    path: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> Result<(StatusCode, Result<Bytes, String>), String> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(format!("{}{path}", mock.url()));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(Bytes::from(body.to_string()))).unwrap();
    let resp = client().request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| e.to_string());
    Ok((status, body))
}

#[tokio::test]
async fn connection_faults_by_header() {
    let mock = start().await;
    let stream = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hello there friend"}]});
    // reset: no response head at all.
    let r = raw(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-fault", "reset")],
        chat_body("x"),
    )
    .await;
    assert!(r.is_err(), "reset must fail before the head: {r:?}");
    // hang: the head never comes.
    let hang = tokio::time::timeout(
        Duration::from_millis(300),
        raw(
            &mock,
            "/v1/chat/completions",
            &[("x-mock-fault", "hang")],
            chat_body("x"),
        ),
    )
    .await;
    assert!(hang.is_err(), "hang must not answer");
    // cut: 200 head, two events, then a broken body.
    let (status, body) = raw(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-fault", "cut"), ("x-mock-cut-after", "2")],
        stream.clone(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_err(), "cut must break the body");
    // error-first: 200 SSE whose first event is an error, in each provider's shape.
    let (status, body) = raw(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-fault", "error-first")],
        stream,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.unwrap().to_vec()).unwrap();
    assert!(text.starts_with("data: {\"error\":"), "{text}");
    let (_, body) = raw(
        &mock,
        "/v1/messages",
        &[("x-mock-fault", "error-first")],
        json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .unwrap();
    let text = String::from_utf8(body.unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: error\n"), "{text}");
    assert!(text.contains("overloaded_error"), "{text}");
}

#[tokio::test]
async fn server_wide_fault_plan_by_api_and_rate() {
    let mock = start().await;
    let c = client();
    let put = |body: &str| {
        Request::builder()
            .method(Method::PUT)
            .uri(format!("{}/__mock/fault", mock.url()))
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap()
    };
    // Bad plans are refused with the field named.
    let resp = c.request(put(r#"{"fault":"status"}"#)).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("status:"));
    let resp = c
        .request(put(r#"{"fault":"status","status":503,"rate":1.5}"#))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // 30% of requests get a 503.
    let resp = c
        .request(put(r#"{"fault":"status","status":503,"rate":0.3}"#))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut failed = 0;
    for _ in 0..200 {
        let r = post(&mock, "/v1/chat/completions", &[], chat_body("hi")).await;
        if r.status == StatusCode::SERVICE_UNAVAILABLE {
            failed += 1;
        } else {
            assert_eq!(r.status, StatusCode::OK);
        }
    }
    assert!(
        (35..=85).contains(&failed),
        "{failed} of 200 failed at rate 0.3"
    );
    // A request's own header wins over the plan; DELETE clears it.
    mock.set_fault(Some(parapet::mock::FaultPlan {
        fault: parapet::mock::PlannedFault::Fault(parapet::mock::Fault::Reset),
        rate: 1.0,
    }));
    let r = post(
        &mock,
        "/v1/chat/completions",
        &[("x-mock-status", "429")],
        chat_body("hi"),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let del = Request::builder()
        .method(Method::DELETE)
        .uri(format!("{}/__mock/fault", mock.url()))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        c.request(del).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let r = post(&mock, "/v1/chat/completions", &[], chat_body("hi")).await;
    assert_eq!(r.status, StatusCode::OK);
}
