//! Anthropic Messages API endpoint of the mock (`POST /v1/messages`), plain and streamed.

use http::Response;
use serde_json::{json, Value};

use super::body::MockBody;
use super::controls::Controls;
use super::openai::named_event;
use super::text::{chunks, content_text, decide, estimate_tokens, last_user_text, Reply};
use super::{json_response, sse_response};

/// The text of the `tool_result` blocks of the last message, if it carries any.
fn tool_result_text(messages: Option<&Value>) -> Option<String> {
    let blocks = messages?.as_array()?.last()?.get("content")?.as_array()?;
    let mut found = false;
    let mut out = String::new();
    for b in blocks {
        if b.get("type").and_then(Value::as_str) == Some("tool_result") {
            found = true;
            if let Some(c) = b.get("content") {
                out.push_str(&content_text(c));
            }
        }
    }
    found.then_some(out)
}

/// `POST /v1/messages`.
pub fn messages(req: &Value, ctl: &Controls, seq: u64) -> Response<MockBody> {
    let msgs = req.get("messages");
    let user_text = last_user_text(msgs);
    let reply = match tool_result_text(msgs) {
        Some(result) => Reply::Text(match &ctl.reply {
            Some(r) => r.clone(),
            None => format!("Tool result: {result}"),
        }),
        None => decide(req, &user_text, ctl),
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("claude-sonnet-4-5")
        .to_owned();
    let id = format!("msg_mock_{seq}");
    let tool_id = format!("toolu_mock_{seq}");
    let input_tokens = estimate_tokens(&user_text);
    let (output_tokens, stop_reason) = match &reply {
        Reply::Text(t) => (estimate_tokens(t), "end_turn"),
        Reply::Tool { arguments, .. } => (estimate_tokens(arguments), "tool_use"),
    };
    let usage = json!({
        "input_tokens": input_tokens, "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
    });
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);

    // The thinking block's signature: opaque to clients (the API checks it when the block is
    // sent back); here a digest-like string derived from the text.
    let signature = ctl.thinking.as_ref().map(|t| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in t.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        format!("EqMock{h:016x}")
    });
    if !stream {
        let block = match &reply {
            Reply::Text(t) => json!({"type": "text", "text": t}),
            Reply::Tool { name, arguments } => {
                let input: Value = serde_json::from_str(arguments).unwrap_or_else(|_| json!({}));
                json!({"type": "tool_use", "id": tool_id, "name": name, "input": input})
            }
        };
        let mut content = Vec::new();
        if let (Some(t), Some(sig)) = (&ctl.thinking, &signature) {
            content.push(json!({"type": "thinking", "thinking": t, "signature": sig}));
        }
        content.push(block);
        let body = json!({
            "id": id, "type": "message", "role": "assistant", "model": model,
            "content": content, "stop_reason": stop_reason, "stop_sequence": null,
            "usage": usage,
        });
        return json_response(http::StatusCode::OK, body.to_string().into());
    }

    let mut frames = Vec::new();
    let mut push = |v: Value| {
        let kind = v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        frames.push(named_event(&kind, &v));
    };
    push(json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": 1,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }}));
    let mut index = 0;
    if let (Some(t), Some(sig)) = (&ctl.thinking, &signature) {
        push(json!({"type": "content_block_start", "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""}}));
        for piece in chunks(t, ctl.chunk_size) {
            push(json!({"type": "content_block_delta", "index": 0,
                        "delta": {"type": "thinking_delta", "thinking": piece}}));
        }
        push(json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "signature_delta", "signature": sig}}));
        push(json!({"type": "content_block_stop", "index": 0}));
        index = 1;
    }
    match &reply {
        Reply::Text(t) => {
            push(json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "text", "text": ""}}));
            push(json!({"type": "ping"}));
            for piece in chunks(t, ctl.chunk_size) {
                push(json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "text_delta", "text": piece}}));
            }
        }
        Reply::Tool { name, arguments } => {
            push(json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}));
            push(json!({"type": "ping"}));
            for piece in chunks(arguments, ctl.chunk_size) {
                push(json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": piece}}));
            }
        }
    }
    push(json!({"type": "content_block_stop", "index": index}));
    push(json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}}));
    push(json!({"type": "message_stop"}));
    sse_response(frames, ctl)
}
