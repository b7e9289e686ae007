//! OpenAI API endpoints of the mock: chat completions, Responses, embeddings, legacy completions, models.

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Value};

use super::body::MockBody;
use super::controls::Controls;
use super::text::{
    base64, chunks, content_text, decide, embedding, estimate_tokens, json_quote, last_user_text,
    now_secs, reply_text, Reply,
};
use super::{bad_request, json_response, sse_response, DONE};

/// Models listed by `GET /v1/models`.
const MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "gpt-3.5-turbo-instruct",
];

/// Default embedding width (that of `text-embedding-3-small`).
const DEFAULT_DIMENSIONS: usize = 1536;
/// Largest `dimensions` the mock accepts.
const MAX_DIMENSIONS: usize = 8192;

fn model(req: &Value, default: &str) -> String {
    req.get("model")
        .and_then(Value::as_str)
        .unwrap_or(default)
        .to_owned()
}

fn wants_stream(req: &Value) -> bool {
    req.get("stream").and_then(Value::as_bool).unwrap_or(false)
}

/// One token's entry of chat `logprobs.content` (the mock's tokens are its stream chunks).
fn token_logprob(token: &str) -> String {
    let bytes: Vec<String> = token.bytes().map(|b| b.to_string()).collect();
    format!(
        r#"{{"token":{},"logprob":-0.01,"bytes":[{}],"top_logprobs":[]}}"#,
        json_quote(token),
        bytes.join(",")
    )
}

/// Chat `logprobs` of `tokens`, or `null` when the request did not ask for them.
fn chat_logprobs(req: &Value, tokens: &[&str]) -> String {
    if req.get("logprobs").and_then(Value::as_bool) != Some(true) {
        return "null".into();
    }
    let content: Vec<String> = tokens.iter().map(|t| token_logprob(t)).collect();
    format!(r#"{{"content":[{}],"refusal":null}}"#, content.join(","))
}

/// `POST /v1/chat/completions`, plain or `stream: true`.
pub fn chat(req: &Value, ctl: &Controls, seq: u64) -> Response<MockBody> {
    let messages = req.get("messages");
    let user_text = last_user_text(messages);
    let last = messages.and_then(Value::as_array).and_then(|m| m.last());
    // After a tool result, answer in text instead of calling the tool again.
    let reply = match last {
        Some(m) if m.get("role").and_then(Value::as_str) == Some("tool") => {
            let result = m.get("content").map(content_text).unwrap_or_default();
            Reply::Text(match &ctl.reply {
                Some(r) => r.clone(),
                None => format!("Tool result: {result}"),
            })
        }
        _ => decide(req, &user_text, ctl),
    };
    let model = model(req, "gpt-4o-mini");
    let id = format!("chatcmpl-mock-{seq}");
    let created = now_secs();
    let prompt_tokens = estimate_tokens(&user_text);
    let completion_tokens = match &reply {
        Reply::Text(t) => estimate_tokens(t),
        Reply::Tool { arguments, .. } => estimate_tokens(arguments),
    };
    let usage = format!(
        r#"{{"prompt_tokens":{prompt_tokens},"completion_tokens":{completion_tokens},"total_tokens":{},"prompt_tokens_details":{{"cached_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0}}}}"#,
        prompt_tokens + completion_tokens
    );

    if !wants_stream(req) {
        let logprobs = match &reply {
            Reply::Text(t) => chat_logprobs(req, &chunks(t, ctl.chunk_size)),
            Reply::Tool { .. } => "null".into(),
        };
        let (message, finish) = match &reply {
            Reply::Text(t) => (
                format!(
                    r#"{{"role":"assistant","content":{},"refusal":null}}"#,
                    json_quote(t)
                ),
                "stop",
            ),
            Reply::Tool { name, arguments } => (
                format!(
                    r#"{{"role":"assistant","content":null,"refusal":null,"tool_calls":[{{"id":"call_mock_{seq}","type":"function","function":{{"name":{},"arguments":{}}}}}]}}"#,
                    json_quote(name),
                    json_quote(arguments)
                ),
                "tool_calls",
            ),
        };
        let body = format!(
            r#"{{"id":"{id}","object":"chat.completion","created":{created},"model":{},"system_fingerprint":"fp_mock","choices":[{{"index":0,"message":{message},"logprobs":{logprobs},"finish_reason":"{finish}"}}],"usage":{usage}}}"#,
            json_quote(&model)
        );
        return json_response(StatusCode::OK, Bytes::from(body));
    }

    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let head = format!(
        r#"data: {{"id":"{id}","object":"chat.completion.chunk","created":{created},"model":{},"system_fingerprint":"fp_mock","choices":["#,
        json_quote(&model)
    );
    let tail = if include_usage {
        "],\"usage\":null}\n\n"
    } else {
        "]}\n\n"
    };
    let frame = |choice: &str| -> Bytes {
        let mut s = String::with_capacity(head.len() + choice.len() + tail.len());
        s.push_str(&head);
        s.push_str(choice);
        s.push_str(tail);
        Bytes::from(s)
    };
    let mut frames = Vec::new();
    let finish = match &reply {
        Reply::Text(t) => {
            frames.push(frame(
                r#"{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}"#,
            ));
            for piece in chunks(t, ctl.chunk_size) {
                frames.push(frame(&format!(
                    r#"{{"index":0,"delta":{{"content":{}}},"logprobs":{},"finish_reason":null}}"#,
                    json_quote(piece),
                    chat_logprobs(req, &[piece])
                )));
            }
            "stop"
        }
        Reply::Tool { name, arguments } => {
            frames.push(frame(&format!(
                r#"{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_mock_{seq}","type":"function","function":{{"name":{},"arguments":""}}}}]}},"logprobs":null,"finish_reason":null}}"#,
                json_quote(name)
            )));
            for piece in chunks(arguments, ctl.chunk_size) {
                frames.push(frame(&format!(
                    r#"{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}},"logprobs":null,"finish_reason":null}}"#,
                    json_quote(piece)
                )));
            }
            "tool_calls"
        }
    };
    frames.push(frame(&format!(
        r#"{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{finish}"}}"#
    )));
    if include_usage {
        frames.push(Bytes::from(format!("{head}],\"usage\":{usage}}}\n\n")));
    }
    frames.push(Bytes::from_static(DONE));
    sse_response(frames, ctl)
}

/// `POST /v1/completions` (legacy text completions), plain or streamed.
pub fn completions(req: &Value, ctl: &Controls, seq: u64) -> Response<MockBody> {
    let prompt = match req.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find_map(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => String::new(),
    };
    let text = reply_text(&prompt, ctl);
    let model = model(req, "gpt-3.5-turbo-instruct");
    let id = format!("cmpl-mock-{seq}");
    let created = now_secs();
    let (pt, ct) = (estimate_tokens(&prompt), estimate_tokens(&text));
    let usage = json!({"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct});
    if !wants_stream(req) {
        let body = json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
            "usage": usage,
        });
        return json_value(&body);
    }
    let chunk = |text: &str, finish: Value| {
        data_event(&json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        }))
    };
    let mut frames: Vec<Bytes> = chunks(&text, ctl.chunk_size)
        .into_iter()
        .map(|p| chunk(p, Value::Null))
        .collect();
    frames.push(chunk("", json!("stop")));
    frames.push(Bytes::from_static(DONE));
    sse_response(frames, ctl)
}

/// `GET /v1/models`.
pub fn models() -> Response<MockBody> {
    let data: Vec<Value> = MODELS
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "parapet-mock"}))
        .collect();
    json_value(&json!({"object": "list", "data": data}))
}

/// `POST /v1/embeddings`: deterministic unit vectors; `encoding_format: "base64"` gives
/// base64 of little-endian f32 (what the Python SDK requests by default).
pub fn embeddings(req: &Value, _ctl: &Controls, _seq: u64) -> Response<MockBody> {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => return bad_request("/v1/embeddings", "'input' is a required property"),
    };
    let dims = match req.get("dimensions").and_then(Value::as_u64) {
        None => DEFAULT_DIMENSIONS,
        Some(d) if (1..=MAX_DIMENSIONS as u64).contains(&d) => d as usize,
        Some(_) => return bad_request("/v1/embeddings", "'dimensions' is out of range"),
    };
    let base64_format = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            tokens += estimate_tokens(text);
            let v = embedding(text, dims);
            let encoded = if base64_format {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64(&bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": encoded})
        })
        .collect();
    json_value(&json!({
        "object": "list",
        "data": data,
        "model": model(req, "text-embedding-3-small"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
}

/// `POST /v1/responses`, plain or streamed with the Responses API's typed events; a
/// `function_call` output item when tools are set and the prompt mentions `weather`.
pub fn responses(req: &Value, ctl: &Controls, seq: u64) -> Response<MockBody> {
    let items = req.get("input").and_then(Value::as_array);
    let user_text = match req.get("input") {
        Some(Value::String(s)) => s.clone(),
        _ => items
            .and_then(|items| {
                items
                    .iter()
                    .rev()
                    .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            })
            .and_then(|i| i.get("content"))
            .map(content_text)
            .unwrap_or_default(),
    };
    // After a function_call_output, answer in text instead of calling the tool again.
    let tool_output = items
        .and_then(|items| items.last())
        .filter(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|i| i.get("output").map(content_text).unwrap_or_default());
    let reply = match tool_output {
        Some(out) => Reply::Text(match &ctl.reply {
            Some(r) => r.clone(),
            None => format!("Tool result: {out}"),
        }),
        None => decide(req, &user_text, ctl),
    };
    let model = model(req, "gpt-4o-mini");
    let id = format!("resp_mock_{seq}");
    let created = now_secs();
    let it = estimate_tokens(&user_text);
    let ot = match &reply {
        Reply::Text(t) => estimate_tokens(t),
        Reply::Tool { arguments, .. } => estimate_tokens(arguments),
    };
    let usage = json!({
        "input_tokens": it, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": ot, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": it + ot,
    });
    let tools = req.get("tools").cloned().unwrap_or_else(|| json!([]));
    let response = |status: &str, output: Value, usage: Value| {
        json!({
            "id": id, "object": "response", "created_at": created, "status": status,
            "background": false, "error": null, "incomplete_details": null,
            "instructions": req.get("instructions").cloned().unwrap_or(Value::Null),
            "max_output_tokens": req.get("max_output_tokens").cloned().unwrap_or(Value::Null),
            "model": model, "output": output, "parallel_tool_calls": true,
            "previous_response_id": req.get("previous_response_id").cloned().unwrap_or(Value::Null),
            "reasoning": {"effort": null, "summary": null}, "store": true,
            "temperature": 1.0, "text": {"format": {"type": "text"}}, "tool_choice": "auto",
            "tools": tools, "top_p": 1.0, "truncation": "disabled", "usage": usage,
            "user": null, "metadata": {},
        })
    };

    let (item, item_id, part) = match &reply {
        Reply::Text(text) => {
            let item_id = format!("msg_mock_{seq}");
            let part =
                json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
            let item = json!({
                "type": "message", "id": item_id, "status": "completed", "role": "assistant",
                "content": [part],
            });
            (item, item_id, part)
        }
        Reply::Tool { name, arguments } => {
            let item_id = format!("fc_mock_{seq}");
            let item = json!({
                "type": "function_call", "id": item_id, "call_id": format!("call_mock_{seq}"),
                "name": name, "arguments": arguments, "status": "completed",
            });
            (item, item_id, Value::Null)
        }
    };
    if !wants_stream(req) {
        return json_value(&response("completed", json!([item]), usage));
    }

    let mut seqno = 0u64;
    let mut frames = Vec::new();
    let mut push = |kind: &str, mut data: Value| {
        if let Value::Object(o) = &mut data {
            o.insert("type".into(), json!(kind));
            o.insert("sequence_number".into(), json!(seqno));
        }
        seqno += 1;
        frames.push(named_event(kind, &data));
    };
    push(
        "response.created",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    push(
        "response.in_progress",
        json!({"response": response("in_progress", json!([]), Value::Null)}),
    );
    match &reply {
        Reply::Text(text) => {
            push(
                "response.output_item.added",
                json!({"output_index": 0, "item": {
                    "type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []
                }}),
            );
            push(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0,
                       "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            );
            for piece in chunks(text, ctl.chunk_size) {
                push(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
                );
            }
            push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            );
            push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part}),
            );
        }
        Reply::Tool { name, arguments } => {
            let mut added = item.clone();
            added["arguments"] = json!("");
            added["status"] = json!("in_progress");
            push(
                "response.output_item.added",
                json!({"output_index": 0, "item": added}),
            );
            for piece in chunks(arguments, ctl.chunk_size) {
                push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": piece}),
                );
            }
            push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "name": name, "arguments": arguments}),
            );
        }
    }
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    );
    push(
        "response.completed",
        json!({"response": response("completed", json!([item]), usage)}),
    );
    sse_response(frames, ctl)
}

fn json_value(v: &Value) -> Response<MockBody> {
    json_response(StatusCode::OK, Bytes::from(v.to_string()))
}

/// `data: <json>\n\n`
fn data_event(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// `event: <name>\ndata: <json>\n\n`
pub(super) fn named_event(name: &str, v: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {v}\n\n"))
}
