//! Tests for provider normalization: realistic bodies of every format, write-back
//! shape preservation, stream normalization and never-panic properties.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::sse::{SseDecoder, SseEvent, SseFrame};

fn k(s: &str) -> PathElem {
    PathElem::Key(s.to_owned().into())
}
fn i(n: usize) -> PathElem {
    PathElem::Index(n)
}

/// (kind, rendered path, text) triples, the essence of a segment list.
fn brief(segs: &[Segment]) -> Vec<(SegmentKind, String, String)> {
    segs.iter()
        .map(|s| (s.kind, path_to_string(&s.path), s.text.clone()))
        .collect()
}

fn same_shape(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same_shape(v, w))
        }
        (Value::String(_), Value::String(_)) => true,
        (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => a == b,
        _ => false,
    }
}

fn map_strings(v: Value, f: &dyn Fn(&str) -> String) -> Value {
    match v {
        Value::String(s) => Value::String(f(&s)),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| map_strings(x, f)).collect()),
        Value::Object(o) => {
            Value::Object(o.into_iter().map(|(k, x)| (k, map_strings(x, f))).collect())
        }
        other => other,
    }
}

/// The redaction a guardrail would do: uppercase + marker in plain text, inside string
/// leaves only for JSON arguments.
fn redact(seg: &Segment) -> String {
    let f = |s: &str| format!("[R:{}]", s.to_uppercase());
    if seg.kind == SegmentKind::ToolCallArguments {
        if let Ok(v) = serde_json::from_str::<Value>(&seg.text) {
            return map_strings(v, &f).to_string();
        }
    }
    f(&seg.text)
}

/// Redacts every segment, checks the shape is kept and that re-parsing yields the same
/// segments (kind, path) with the new texts.
fn check_redaction(segs: &[Segment], body: &Value, reparse: &dyn Fn(&Value) -> Vec<Segment>) {
    let mut red = body.clone();
    let mut expected = Vec::new();
    for s in segs {
        let t = redact(s);
        set_segment_text(&mut red, s, &t).unwrap();
        expected.push((s.kind, path_to_string(&s.path), t));
    }
    assert!(same_shape(body, &red), "shape changed:\n{body}\n{red}");
    assert_eq!(brief(&reparse(&red)), expected);
    // The redacted body is valid JSON text.
    let text = red.to_string();
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), red);
}

fn check_request(format: ApiFormat, body: &Value) -> RequestView {
    let view = parse_request(format, body).unwrap();
    check_redaction(&view.segments, body, &|v| {
        parse_request(format, v).unwrap().segments
    });
    view
}

fn check_response(format: ApiFormat, body: &Value) -> ResponseView {
    let view = parse_response(format, body).unwrap();
    check_redaction(&view.segments, body, &|v| {
        parse_response(format, v).unwrap().segments
    });
    view
}

#[test]
fn paths_map_to_formats() {
    use ApiFormat::*;
    assert_eq!(format_for_path("/v1/chat/completions"), Some(OpenAiChat));
    assert_eq!(
        format_for_path("/v1/chat/completions/?x=1"),
        Some(OpenAiChat)
    );
    assert_eq!(
        format_for_path("/openai/v1/chat/completions"),
        Some(OpenAiChat)
    );
    assert_eq!(format_for_path("/v1/responses"), Some(OpenAiResponses));
    assert_eq!(format_for_path("/v1/embeddings"), Some(OpenAiEmbeddings));
    assert_eq!(format_for_path("/v1/completions"), Some(OpenAiCompletions));
    assert_eq!(
        format_for_path("/v1/messages?beta=true"),
        Some(AnthropicMessages)
    );
    assert_eq!(format_for_path("/v1/messages/count_tokens"), None);
    assert_eq!(format_for_path("/v1/responses/resp_123"), None);
    assert_eq!(format_for_path("/xv1/messages"), None);
    assert_eq!(format_for_path("/v1/models"), None);
    assert_eq!(format_for_path(""), None);
    assert_eq!(AnthropicMessages.as_str(), "anthropic.messages");
    assert!(AnthropicMessages.is_anthropic() && !OpenAiChat.is_anthropic());
}

fn chat_request() -> Value {
    json!({
        "model": "gpt-4o-mini",
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0.2,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "My email is jane@example.com"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
                {"type": "text", "text": "What's the weather in Paris?"}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_abc", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_abc", "content": "{\"temp\": 18}"},
            {"role": "tool", "tool_call_id": "call_abc", "content": [{"type": "text", "text": "sunny"}]},
            {"role": "assistant", "content": "Il fait 18 degrés.", "refusal": null},
            {"role": "assistant", "content": null, "function_call": {"name": "lookup", "arguments": "{\"q\":1}"}},
            {"role": "function", "name": "lookup", "content": "found"},
            {"role": "user", "name": "jane", "content": "Merci"}
        ]
    })
}

#[test]
fn chat_request_segments() {
    let view = check_request(ApiFormat::OpenAiChat, &chat_request());
    assert_eq!(view.model.as_deref(), Some("gpt-4o-mini"));
    assert!(view.stream);
    use SegmentKind::*;
    let want: Vec<(SegmentKind, &str, &str)> = vec![
        (
            System,
            "messages[0].content",
            "You are a helpful assistant.",
        ),
        (
            Developer,
            "messages[1].content[0].text",
            "Answer in French.",
        ),
        (
            User,
            "messages[2].content[0].text",
            "My email is jane@example.com",
        ),
        (
            User,
            "messages[2].content[2].text",
            "What's the weather in Paris?",
        ),
        (
            ToolCallName,
            "messages[3].tool_calls[0].function.name",
            "get_weather",
        ),
        (
            ToolCallArguments,
            "messages[3].tool_calls[0].function.arguments",
            "{\"city\":\"Paris\",\"unit\":\"c\"}",
        ),
        (ToolResult, "messages[4].content", "{\"temp\": 18}"),
        (ToolResult, "messages[5].content[0].text", "sunny"),
        (Assistant, "messages[6].content", "Il fait 18 degrés."),
        (ToolCallName, "messages[7].function_call.name", "lookup"),
        (
            ToolCallArguments,
            "messages[7].function_call.arguments",
            "{\"q\":1}",
        ),
        (ToolResult, "messages[8].content", "found"),
        (User, "messages[9].content", "Merci"),
    ];
    let got = brief(&view.segments);
    let got: Vec<(SegmentKind, &str, &str)> = got
        .iter()
        .map(|(k, p, t)| (*k, p.as_str(), t.as_str()))
        .collect();
    assert_eq!(got, want);
    let args = &view.segments[5];
    assert_eq!(args.tool_call_id.as_deref(), Some("call_abc"));
    assert_eq!(args.tool_name.as_deref(), Some("get_weather"));
    assert_eq!(args.role.as_deref(), Some("assistant"));
    let result = &view.segments[6];
    assert_eq!(result.tool_call_id.as_deref(), Some("call_abc"));
    assert_eq!(
        result.tool_name.as_deref(),
        Some("get_weather"),
        "name resolved from the earlier call"
    );
    assert_eq!(view.segments[11].tool_name.as_deref(), Some("lookup"));
    assert_eq!(view.segments[12].tool_name, None);
}

#[test]
fn chat_request_errors_name_the_field() {
    let f = ApiFormat::OpenAiChat;
    assert_eq!(
        parse_request(f, &json!([1])),
        Err(NormalizeError::NotAnObject)
    );
    assert_eq!(
        parse_request(f, &json!({"model": "m"})),
        Err(NormalizeError::MissingField {
            field: "messages".into()
        })
    );
    assert_eq!(
        parse_request(f, &json!({"messages": {}})),
        Err(NormalizeError::WrongType {
            field: "messages".into(),
            expected: "array"
        })
    );
    assert_eq!(
        parse_request(
            f,
            &json!({"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 5}]})
        ),
        Err(NormalizeError::WrongType {
            field: "messages[1].content".into(),
            expected: "string, array or null"
        })
    );
    assert_eq!(
        parse_request(
            f,
            &json!({"messages": [{"role": "user", "content": [{"type": "text", "text": 1}]}]})
        ),
        Err(NormalizeError::WrongType {
            field: "messages[0].content[0].text".into(),
            expected: "string"
        })
    );
    assert_eq!(
        parse_request(f, &json!({"messages": [], "stream": "yes"})),
        Err(NormalizeError::WrongType {
            field: "stream".into(),
            expected: "boolean"
        })
    );
    let e = parse_request(
        f,
        &json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "field `messages[0].tool_calls[0].function.arguments` has the wrong type (expected string)"
    );
    // Unknown roles and part types are not errors.
    let v = parse_request(
        f,
        &json!({"messages": [{"role": "critic", "content": [{"type": "input_audio", "input_audio": {}}, {"type": "text", "text": "t"}]}]}),
    )
    .unwrap();
    assert_eq!(
        brief(&v.segments),
        vec![(
            SegmentKind::Other,
            "messages[0].content[1].text".into(),
            "t".into()
        )]
    );
}

fn responses_request() -> Value {
    json!({
        "model": "gpt-4.1",
        "instructions": "Be terse.",
        "input": [
            {"role": "user", "content": "Hi, I'm Bob (bob@corp.com)"},
            {"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": "Look up order 42"},
                {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
            ]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Sure.", "annotations": []}]},
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "call_9", "name": "get_order",
             "arguments": "{\"order_id\":42}"},
            {"type": "function_call_output", "call_id": "call_9", "output": "{\"status\":\"shipped\"}"},
            {"type": "message", "role": "developer", "content": "dev note"}
        ],
        "tools": [{"type": "function", "name": "get_order", "parameters": {"type": "object"}}],
        "stream": false
    })
}

#[test]
fn responses_request_segments() {
    let view = check_request(ApiFormat::OpenAiResponses, &responses_request());
    use SegmentKind::*;
    assert_eq!(
        brief(&view.segments),
        vec![
            (System, "instructions".into(), "Be terse.".into()),
            (
                User,
                "input[0].content".into(),
                "Hi, I'm Bob (bob@corp.com)".into()
            ),
            (
                User,
                "input[1].content[0].text".into(),
                "Look up order 42".into()
            ),
            (Assistant, "input[2].content[0].text".into(), "Sure.".into()),
            (ToolCallName, "input[4].name".into(), "get_order".into()),
            (
                ToolCallArguments,
                "input[4].arguments".into(),
                "{\"order_id\":42}".into()
            ),
            (
                ToolResult,
                "input[5].output".into(),
                "{\"status\":\"shipped\"}".into()
            ),
            (Developer, "input[6].content".into(), "dev note".into()),
        ]
    );
    assert_eq!(view.segments[5].tool_call_id.as_deref(), Some("call_9"));
    assert_eq!(view.segments[6].tool_name.as_deref(), Some("get_order"));
    assert!(!view.stream);

    let v = check_request(
        ApiFormat::OpenAiResponses,
        &json!({"model": "o3", "input": "Tell me a joke"}),
    );
    assert_eq!(
        brief(&v.segments),
        vec![(User, "input".into(), "Tell me a joke".into())]
    );
    assert!(parse_request(ApiFormat::OpenAiResponses, &json!({"input": 3})).is_err());
}

#[test]
fn embeddings_and_completions_requests() {
    use SegmentKind::*;
    let v = check_request(
        ApiFormat::OpenAiEmbeddings,
        &json!({"model": "text-embedding-3-small", "input": "hello"}),
    );
    assert_eq!(
        brief(&v.segments),
        vec![(EmbeddingInput, "input".into(), "hello".into())]
    );
    let v = check_request(
        ApiFormat::OpenAiEmbeddings,
        &json!({"model": "text-embedding-3-small", "input": ["a", "b"], "encoding_format": "float"}),
    );
    assert_eq!(v.segments.len(), 2);
    assert_eq!(path_to_string(&v.segments[1].path), "input[1]");
    let v = check_request(
        ApiFormat::OpenAiEmbeddings,
        &json!({"input": [[1, 2, 3], [4]]}),
    );
    assert!(v.segments.is_empty(), "token arrays are not text");
    let v = check_request(ApiFormat::OpenAiEmbeddings, &json!({"input": [1, 2, 3]}));
    assert!(v.segments.is_empty());
    assert!(parse_request(ApiFormat::OpenAiEmbeddings, &json!({"input": [true]})).is_err());

    let v = check_request(
        ApiFormat::OpenAiCompletions,
        &json!({"model": "gpt-3.5-turbo-instruct", "prompt": ["Say this", "is a test"], "suffix": "end", "max_tokens": 7}),
    );
    assert_eq!(
        brief(&v.segments),
        vec![
            (Prompt, "prompt[0]".into(), "Say this".into()),
            (Prompt, "prompt[1]".into(), "is a test".into()),
            (Prompt, "suffix".into(), "end".into()),
        ]
    );
}

fn anthropic_request() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are Claude.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "What's the weather in SF? I'm at 555-0100."},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "opts": {"units": ["f", "c"], "days": 3}}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "65 degrees"},
                {"type": "tool_result", "tool_use_id": "toolu_01", "is_error": false,
                 "content": [{"type": "text", "text": "sunny"}, {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {"type": "text", "text": "Thanks"}
            ]}
        ],
        "stream": true
    })
}

#[test]
fn anthropic_request_segments() {
    let body = anthropic_request();
    let view = check_request(ApiFormat::AnthropicMessages, &body);
    use SegmentKind::*;
    let input_text = body["messages"][1]["content"][1]["input"].to_string();
    assert_eq!(
        brief(&view.segments),
        vec![
            (System, "system[0].text".into(), "You are Claude.".into()),
            (
                User,
                "messages[0].content".into(),
                "What's the weather in SF? I'm at 555-0100.".into()
            ),
            (
                Assistant,
                "messages[1].content[0].text".into(),
                "Let me check.".into()
            ),
            (
                ToolCallName,
                "messages[1].content[1].name".into(),
                "get_weather".into()
            ),
            (
                ToolCallArguments,
                "messages[1].content[1].input".into(),
                input_text
            ),
            (
                ToolResult,
                "messages[2].content[0].content".into(),
                "65 degrees".into()
            ),
            (
                ToolResult,
                "messages[2].content[1].content[0].text".into(),
                "sunny".into()
            ),
            (User, "messages[2].content[3].text".into(), "Thanks".into()),
        ]
    );
    assert_eq!(view.segments[5].tool_name.as_deref(), Some("get_weather"));
    assert_eq!(view.segments[5].tool_call_id.as_deref(), Some("toolu_01"));
    assert!(view.stream);

    // tool_use.input stays an object on write-back; non-object replacements are refused.
    let mut red = body.clone();
    let seg = &view.segments[4];
    set_segment_text(&mut red, seg, r#"{"location":"[LOCATION_1]"}"#).unwrap();
    assert_eq!(
        red["messages"][1]["content"][1]["input"],
        json!({"location": "[LOCATION_1]"})
    );
    assert!(set_segment_text(&mut red, seg, "\"str\"").is_err());
    assert!(set_segment_text(&mut red, seg, "{broken").is_err());

    let v = check_request(
        ApiFormat::AnthropicMessages,
        &json!({"model": "claude", "system": "Plain system", "messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(v.segments[0].kind, System);
    assert_eq!(
        parse_request(
            ApiFormat::AnthropicMessages,
            &json!({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "n", "input": "x"}]}]})
        ),
        Err(NormalizeError::WrongType {
            field: "messages[0].content[0].input".into(),
            expected: "object"
        })
    );
}

fn chat_response() -> Value {
    json!({
        "id": "chatcmpl-123",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "Contact me at bob@corp.com", "refusal": null},
             "logprobs": null, "finish_reason": "stop"},
            {"index": 1, "message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "send_email", "arguments": "{\"to\":\"bob@corp.com\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "log", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}
        ],
        "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
                  "prompt_tokens_details": {"cached_tokens": 4}, "completion_tokens_details": {"reasoning_tokens": 0}}
    })
}

#[test]
fn chat_response_view() {
    let v = check_response(ApiFormat::OpenAiChat, &chat_response());
    assert_eq!(v.id.as_deref(), Some("chatcmpl-123"));
    assert_eq!(v.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    let u = v.usage.unwrap();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.total_tokens),
        (Some(19), Some(10), Some(29))
    );
    assert_eq!(u.cache_read_input_tokens, Some(4));
    assert_eq!(
        v.finish
            .iter()
            .map(|f| (f.index, f.reason.as_deref()))
            .collect::<Vec<_>>(),
        vec![(0, Some("stop")), (1, Some("tool_calls"))]
    );
    assert_eq!(
        v.tool_calls,
        vec![
            ToolCall {
                index: 1,
                id: Some("call_1".into()),
                name: Some("send_email".into()),
                arguments: "{\"to\":\"bob@corp.com\"}".into()
            },
            ToolCall {
                index: 1,
                id: Some("call_2".into()),
                name: Some("log".into()),
                arguments: "{}".into()
            },
        ]
    );
    assert_eq!(
        path_to_string(&v.segments[0].path),
        "choices[0].message.content",
        "first segment is the text answer"
    );
    assert_eq!(v.segments.len(), 5);
    assert_eq!(v.error, None);
}

#[test]
fn completions_and_embeddings_responses() {
    let v = check_response(
        ApiFormat::OpenAiCompletions,
        &json!({"id": "cmpl-1", "object": "text_completion", "model": "gpt-3.5-turbo-instruct",
                "choices": [{"text": "\n\nThis is a test", "index": 0, "logprobs": null, "finish_reason": "length"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}),
    );
    assert_eq!(
        brief(&v.segments),
        vec![(
            SegmentKind::Assistant,
            "choices[0].text".into(),
            "\n\nThis is a test".into()
        )]
    );
    assert_eq!(v.finish[0].reason.as_deref(), Some("length"));
    let v = check_response(
        ApiFormat::OpenAiEmbeddings,
        &json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2]}],
                "model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
    );
    assert!(v.segments.is_empty());
    assert_eq!(v.usage.unwrap().total(), Some(8));
}

#[test]
fn responses_response_view() {
    let body = json!({
        "id": "resp_67cc", "object": "response", "created_at": 1_741_386_163, "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "error": null, "model": "gpt-4.1-2025-04-14",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "thinking"}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_x", "name": "search", "arguments": "{\"q\":\"ssn 123-45-6789\"}", "status": "completed"},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
             "content": [{"type": "output_text", "text": "Here you go", "annotations": []},
                         {"type": "refusal", "refusal": "I can't share that"}]}
        ],
        "usage": {"input_tokens": 36, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": 87, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 123}
    });
    let v = check_response(ApiFormat::OpenAiResponses, &body);
    use SegmentKind::*;
    assert_eq!(
        brief(&v.segments),
        vec![
            (
                Reasoning,
                "output[0].summary[0].text".into(),
                "thinking".into()
            ),
            (ToolCallName, "output[1].name".into(), "search".into()),
            (
                ToolCallArguments,
                "output[1].arguments".into(),
                "{\"q\":\"ssn 123-45-6789\"}".into()
            ),
            (
                Assistant,
                "output[2].content[0].text".into(),
                "Here you go".into()
            ),
            (
                Assistant,
                "output[2].content[1].refusal".into(),
                "I can't share that".into()
            ),
        ]
    );
    assert_eq!(
        v.finish,
        vec![Finish {
            index: 0,
            reason: Some("incomplete".into()),
            detail: Some("max_output_tokens".into())
        }]
    );
    assert_eq!(v.tool_calls.len(), 1);
    assert_eq!(v.tool_calls[0].index, 1);
    assert_eq!(v.tool_calls[0].id.as_deref(), Some("call_x"));
    assert_eq!(v.usage.unwrap().output_tokens, Some(87));
    assert_eq!(v.usage.unwrap().cache_read_input_tokens, Some(0));
}

#[test]
fn anthropic_response_view() {
    let body = json!({
        "id": "msg_01XF", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "I'll look that up."},
            {"type": "tool_use", "id": "toolu_9", "name": "lookup", "input": {"email": "a@b.co", "n": 2}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 2095, "output_tokens": 503, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 20}
    });
    let v = check_response(ApiFormat::AnthropicMessages, &body);
    assert_eq!(v.segments.len(), 4);
    assert_eq!(v.segments[0].kind, SegmentKind::Reasoning);
    assert_eq!(v.segments[0].text, "hmm");
    assert_eq!(path_to_string(&v.segments[0].path), "content[0].thinking");
    assert_eq!(v.finish[0].reason.as_deref(), Some("tool_use"));
    let u = v.usage.unwrap();
    assert_eq!(u.cache_creation_input_tokens, Some(10));
    assert_eq!(u.cache_read_input_tokens, Some(20));
    assert_eq!(u.total_tokens, None);
    assert_eq!(u.total(), Some(2598));
    assert_eq!(
        v.tool_calls,
        vec![ToolCall {
            index: 2,
            id: Some("toolu_9".into()),
            name: Some("lookup".into()),
            arguments: "{\"email\":\"a@b.co\",\"n\":2}".into()
        }]
    );
}

#[test]
fn error_bodies() {
    let v = parse_response(
        ApiFormat::OpenAiChat,
        &json!({"error": {"message": "Rate limit", "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
    )
    .unwrap();
    assert!(v.segments.is_empty());
    assert_eq!(
        v.error.unwrap().code.as_deref(),
        Some("rate_limit_exceeded")
    );
    let v = parse_response(
        ApiFormat::AnthropicMessages,
        &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    )
    .unwrap();
    let e = v.error.unwrap();
    assert_eq!(
        (e.kind.as_deref(), e.message.as_deref()),
        (Some("overloaded_error"), Some("Overloaded"))
    );
    assert_eq!(
        parse_response(
            ApiFormat::OpenAiChat,
            &json!({"choices": [{"message": {"content": 1}}]})
        ),
        Err(NormalizeError::WrongType {
            field: "choices[0].message.content".into(),
            expected: "string, array or null"
        })
    );
}

#[test]
fn usage_merge() {
    let mut u = Usage::from_json(&json!({"input_tokens": 25, "output_tokens": 1})).unwrap();
    u.merge(&Usage::from_json(&json!({"output_tokens": 15})).unwrap());
    assert_eq!((u.input_tokens, u.output_tokens), (Some(25), Some(15)));
    assert_eq!(Usage::default().total(), None);
}

// ---------------------------------------------------------------- streams

/// Decodes an SSE byte stream and normalizes every event.
fn run_stream(format: ApiFormat, sse: &str) -> (Vec<SseEvent>, Vec<StreamItem>) {
    let mut d = SseDecoder::new();
    let mut frames = Vec::new();
    d.feed(sse.as_bytes(), &mut frames).unwrap();
    frames.extend(d.finish());
    let events: Vec<SseEvent> = frames.iter().filter_map(SseFrame::event).cloned().collect();
    let mut n = StreamNormalizer::new(format);
    let items = events.iter().flat_map(|e| n.push(e).unwrap()).collect();
    (events, items)
}

fn joined_text(items: &[StreamItem]) -> String {
    items
        .iter()
        .filter_map(|it| match it {
            StreamItem::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn joined_args(items: &[StreamItem], want: StreamPos) -> String {
    items
        .iter()
        .filter_map(|it| match it {
            StreamItem::ToolCallDelta { pos, arguments, .. } if *pos == want => {
                Some(arguments.as_str())
            }
            _ => None,
        })
        .collect()
}

const CHAT_SSE: &str = concat!(
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Mail bob@\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"corp.com\"},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"send\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"to\\\":\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"x\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: {\"id\":\"chatcmpl-1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\n",
    "data: [DONE]\n\n",
);

#[test]
fn chat_stream_items() {
    let (events, items) = run_stream(ApiFormat::OpenAiChat, CHAT_SSE);
    assert_eq!(events.len(), 9);
    assert_eq!(
        items[0],
        StreamItem::Meta {
            id: Some("chatcmpl-1".into()),
            model: Some("gpt-4o".into())
        }
    );
    assert_eq!(items.len(), 9);
    assert!(
        matches!(&items[1], StreamItem::TextDelta { text, .. } if text == "Mail bob@"),
        "role-only chunk gives only Meta"
    );
    let mut n = StreamNormalizer::new(ApiFormat::OpenAiChat);
    n.push(&events[0]).unwrap();
    assert_eq!(
        n.push(&events[0]).unwrap(),
        vec![StreamItem::Other],
        "role-only delta has nothing to inspect"
    );
    assert_eq!(joined_text(&items), "Mail bob@corp.com");
    let tpos = StreamPos {
        choice: 0,
        item: 0,
        part: 1,
    };
    assert_eq!(joined_args(&items, tpos), "{\"to\":\"x\"}");
    let last_tool = items
        .iter()
        .rev()
        .find(|it| matches!(it, StreamItem::ToolCallDelta { .. }))
        .unwrap();
    match last_tool {
        StreamItem::ToolCallDelta { id, name, path, .. } => {
            assert_eq!(
                (id.as_deref(), name.as_deref()),
                (Some("call_1"), Some("send")),
                "remembered from the start"
            );
            assert_eq!(
                path_to_string(path.as_ref().unwrap()),
                "choices[0].delta.tool_calls[0].function.arguments"
            );
        }
        _ => unreachable!(),
    }
    assert!(items.contains(&StreamItem::Finish(Finish {
        index: 0,
        reason: Some("tool_calls".into()),
        detail: None
    })));
    assert!(items
        .iter()
        .any(|it| matches!(it, StreamItem::Usage(u) if u.total_tokens == Some(21))));
    assert_eq!(items.last(), Some(&StreamItem::Done));
}

#[test]
fn rebuild_redacts_a_delta() {
    let (events, _) = run_stream(ApiFormat::OpenAiChat, CHAT_SSE);
    let mut n = StreamNormalizer::new(ApiFormat::OpenAiChat);
    let items = n.push(&events[1]).unwrap();
    let Some(StreamItem::TextDelta { path, .. }) = items
        .iter()
        .find(|i| matches!(i, StreamItem::TextDelta { .. }))
    else {
        panic!("no delta in {items:?}");
    };
    let out = rebuild_event(&events[1], &[(path.as_slice(), "Mail [EMAIL_1]")]).unwrap();
    assert_eq!(out.event, events[1].event);
    let a: Value = serde_json::from_str(&events[1].data).unwrap();
    let b: Value = serde_json::from_str(&out.data).unwrap();
    assert!(same_shape(&a, &b));
    assert_eq!(b["choices"][0]["delta"]["content"], "Mail [EMAIL_1]");
    assert_eq!(b["id"], a["id"]);
    // The raw bytes are a well-formed SSE event that decodes back to the same data.
    let mut d = SseDecoder::new();
    let frames = d.feed_vec(&out.raw).unwrap();
    assert_eq!(frames[0].event().unwrap().data, out.data);
    assert!(matches!(
        rebuild_event(&events[1], &[(&[k("nope")][..], "x")]),
        Err(NormalizeError::PathNotFound { .. })
    ));
    assert!(matches!(
        rebuild_event(&SseEvent::with_data("[DONE]"), &[]),
        Err(NormalizeError::InvalidJson(_))
    ));
}

#[test]
fn chat_stream_error_and_legacy_completions() {
    let mut n = StreamNormalizer::new(ApiFormat::OpenAiChat);
    let items = n
        .push(&SseEvent::with_data(
            r#"{"error":{"message":"boom","type":"server_error","code":500}}"#,
        ))
        .unwrap();
    assert_eq!(
        items,
        vec![StreamItem::Error(ErrorInfo {
            kind: Some("server_error".into()),
            message: Some("boom".into()),
            code: Some("500".into())
        })]
    );
    assert!(matches!(
        n.push(&SseEvent::with_data("not json")),
        Err(NormalizeError::InvalidJson(_))
    ));
    let mut n = StreamNormalizer::new(ApiFormat::OpenAiCompletions);
    let items = n
        .push(&SseEvent::with_data(
            r#"{"id":"cmpl-1","object":"text_completion","choices":[{"text":"Hel","index":2,"finish_reason":null}],"model":"gpt-3.5-turbo-instruct"}"#,
        ))
        .unwrap();
    assert!(items.contains(&StreamItem::TextDelta {
        pos: StreamPos {
            choice: 2,
            item: 0,
            part: 0
        },
        text: "Hel".into(),
        path: vec![k("choices"), i(0), k("text")],
        reasoning: false,
    }));
}

const RESPONSES_SSE: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"gpt-4.1\",\"output\":[]}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hello \"}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"world\"}\n\n",
    "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"text\":\"Hello world\"}\n\n",
    "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"output_index\":0,\"item\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello world\",\"annotations\":[]}]}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"output_index\":1,\"item\":{\"id\":\"fc_1\",\"type\":\"function_call\",\"call_id\":\"call_7\",\"name\":\"lookup\",\"arguments\":\"\"}}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"{\\\"q\\\":\"}\n\n",
    "event: response.function_call_arguments.delta\ndata: {\"type\":\"response.function_call_arguments.delta\",\"item_id\":\"fc_1\",\"output_index\":1,\"delta\":\"1}\"}\n\n",
    "event: response.function_call_arguments.done\ndata: {\"type\":\"response.function_call_arguments.done\",\"item_id\":\"fc_1\",\"output_index\":1,\"arguments\":\"{\\\"q\\\":1}\"}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"resp_1\",\"status\":\"completed\",\"model\":\"gpt-4.1\",\"output\":[{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hello world\"}]},{\"type\":\"function_call\",\"call_id\":\"call_7\",\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":1}\"}],\"usage\":{\"input_tokens\":5,\"output_tokens\":6,\"total_tokens\":11}}}\n\n",
);

#[test]
fn responses_stream_items() {
    let (events, items) = run_stream(ApiFormat::OpenAiResponses, RESPONSES_SSE);
    assert_eq!(events.len(), 12);
    assert!(matches!(&items[0], StreamItem::Meta { id: Some(id), .. } if id == "resp_1"));
    assert_eq!(joined_text(&items), "Hello world");
    let fpos = StreamPos {
        choice: 0,
        item: 1,
        part: 0,
    };
    assert_eq!(joined_args(&items, fpos), "{\"q\":1}");
    let deltas: Vec<_> = items
        .iter()
        .filter_map(|it| match it {
            StreamItem::ToolCallDelta { id, name, .. } => Some((id.clone(), name.clone())),
            _ => None,
        })
        .collect();
    assert!(deltas
        .iter()
        .all(|d| d == &(Some("call_7".into()), Some("lookup".into()))));
    assert!(items.contains(&StreamItem::BlockDone { pos: fpos }));
    // Summary events expose their full copies with event-relative paths.
    let full: Vec<String> = items
        .iter()
        .filter_map(|it| match it {
            StreamItem::FullText { segments } => {
                Some(segments.iter().map(|s| path_to_string(&s.path)))
            }
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(
        full,
        vec![
            "text",
            "item.content[0].text",
            "item.name",
            "arguments",
            "response.output[0].content[0].text",
            "response.output[1].name",
            "response.output[1].arguments"
        ]
    );
    assert!(items
        .iter()
        .any(|it| matches!(it, StreamItem::Usage(u) if u.total_tokens == Some(11))));
    assert!(items
        .iter()
        .any(|it| matches!(it, StreamItem::Finish(f) if f.reason.as_deref() == Some("completed"))));
    assert_eq!(items.last(), Some(&StreamItem::Done));

    let mut n = StreamNormalizer::new(ApiFormat::OpenAiResponses);
    let ev = SseEvent::with_data(
        r#"{"type":"error","code":"ERR_SOMETHING","message":"Something went wrong","param":null,"sequence_number":1}"#,
    );
    assert_eq!(
        n.push(&ev).unwrap(),
        vec![StreamItem::Error(ErrorInfo {
            kind: Some("error".into()),
            message: Some("Something went wrong".into()),
            code: Some("ERR_SOMETHING".into())
        })]
    );
}

const ANTHROPIC_SSE: &str = concat!(
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":3}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: ping\ndata: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"!\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\": \\\"SF\\\"}\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
);

#[test]
fn anthropic_stream_items() {
    let (events, items) = run_stream(ApiFormat::AnthropicMessages, ANTHROPIC_SSE);
    assert_eq!(events.len(), 12);
    assert!(
        matches!(&items[0], StreamItem::Meta { id: Some(id), model: Some(m) } if id == "msg_1" && m == "claude-sonnet-4-5")
    );
    assert_eq!(joined_text(&items), "Hello!");
    let tpos = StreamPos {
        choice: 0,
        item: 1,
        part: 0,
    };
    assert_eq!(joined_args(&items, tpos), "{\"location\": \"SF\"}");
    assert!(items.iter().any(|it| matches!(it,
        StreamItem::ToolCallDelta { pos, id: Some(id), name: Some(n), path: Some(p), .. }
            if *pos == tpos && id == "toolu_1" && n == "get_weather" && path_to_string(p) == "delta.partial_json")));
    assert!(items.contains(&StreamItem::BlockDone {
        pos: StreamPos {
            choice: 0,
            item: 0,
            part: 0
        }
    }));
    let mut usage = Usage::default();
    for it in &items {
        if let StreamItem::Usage(u) = it {
            usage.merge(u);
        }
    }
    assert_eq!(
        (
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens
        ),
        (Some(25), Some(15), Some(3))
    );
    assert!(items
        .iter()
        .any(|it| matches!(it, StreamItem::Finish(f) if f.reason.as_deref() == Some("tool_use"))));
    assert_eq!(items.last(), Some(&StreamItem::Done));
    let mut n = StreamNormalizer::new(ApiFormat::AnthropicMessages);
    let err = SseEvent {
        event: Some("error".into()),
        data:
            r#"{"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}"#
                .into(),
        ..SseEvent::default()
    };
    assert_eq!(
        n.push(&err).unwrap(),
        vec![StreamItem::Error(ErrorInfo {
            kind: Some("overloaded_error".into()),
            message: Some("Overloaded".into()),
            code: None
        })]
    );
}

/// Every delta path reported for a stream is writable with `rebuild_event`, and
/// writing the same text back is the identity on the data JSON.
#[test]
fn every_stream_path_is_writable() {
    for (format, sse) in [
        (ApiFormat::OpenAiChat, CHAT_SSE),
        (ApiFormat::OpenAiResponses, RESPONSES_SSE),
        (ApiFormat::AnthropicMessages, ANTHROPIC_SSE),
    ] {
        let (events, _) = run_stream(format, sse);
        let mut n = StreamNormalizer::new(format);
        for ev in &events {
            for (path, text) in item_paths(&n.push(ev).unwrap()) {
                let out = rebuild_event(ev, &[(path.as_slice(), text.as_str())]).unwrap();
                let a: Value = serde_json::from_str(&ev.data).unwrap();
                let b: Value = serde_json::from_str(&out.data).unwrap();
                assert_eq!(a, b);
            }
        }
    }
}

fn item_paths(items: &[StreamItem]) -> Vec<(Vec<PathElem>, String)> {
    let mut out = Vec::new();
    for it in items {
        match it {
            StreamItem::TextDelta { text, path, .. } => out.push((path.clone(), text.clone())),
            StreamItem::ToolCallDelta {
                arguments,
                path: Some(path),
                ..
            } => out.push((path.clone(), arguments.clone())),
            StreamItem::FullText { segments } => {
                out.extend(segments.iter().map(|s| (s.path.clone(), s.text.clone())))
            }
            _ => {}
        }
    }
    out
}

// ---------------------------------------------------------------- properties

const KEYS: &[&str] = &[
    "messages",
    "content",
    "role",
    "type",
    "text",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "input",
    "output",
    "instructions",
    "prompt",
    "system",
    "choices",
    "message",
    "delta",
    "index",
    "usage",
    "tool_use_id",
    "content_block",
    "partial_json",
    "response",
    "item",
    "part",
    "id",
    "call_id",
    "finish_reason",
    "stop_reason",
    "stream",
    "model",
    "error",
    "refusal",
    "output_index",
    "function_call",
    "status",
    "custom",
    "suffix",
];
const STRS: &[&str] = &[
    "text",
    "tool_use",
    "tool_result",
    "message",
    "function_call",
    "function_call_output",
    "user",
    "assistant",
    "system",
    "tool",
    "function",
    "developer",
    "input_text",
    "output_text",
    "refusal",
    "text_delta",
    "input_json_delta",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "message_delta",
    "response.output_text.delta",
    "response.completed",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "error",
    "[DONE]",
    "{}",
    "custom_tool_call",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (0u64..5).prop_map(|n| json!(n)),
        any::<i64>().prop_map(|n| json!(n)),
        proptest::sample::select(STRS).prop_map(|s| Value::String(s.to_owned())),
        "[a-z{}\":]{0,6}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((proptest::sample::select(KEYS), inner), 0..6).prop_map(
                |kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            ),
        ]
    })
}

const FORMATS: [ApiFormat; 5] = [
    ApiFormat::OpenAiChat,
    ApiFormat::OpenAiResponses,
    ApiFormat::OpenAiEmbeddings,
    ApiFormat::OpenAiCompletions,
    ApiFormat::AnthropicMessages,
];

/// Writing every segment's own text back leaves the body unchanged (so every reported
/// path exists and holds text).
fn assert_identity_writes(body: &Value, segs: &[Segment]) {
    let mut copy = body.clone();
    for s in segs {
        set_segment_text(&mut copy, s, &s.text).unwrap();
    }
    assert_eq!(&copy, body);
}

fn arb_content() -> impl Strategy<Value = Value> {
    let part = prop_oneof![
        "[ -~]{0,8}".prop_map(|t| json!({"type": "text", "text": t})),
        Just(json!({"type": "image_url", "image_url": {"url": "https://x"}})),
    ];
    prop_oneof![
        "[ -~é]{0,10}".prop_map(Value::String),
        Just(Value::Null),
        proptest::collection::vec(part, 0..3).prop_map(Value::Array),
    ]
}

fn arb_chat_body() -> impl Strategy<Value = Value> {
    let call = ("[a-z_]{1,6}", proptest::collection::btree_map("[a-z]{1,4}", "[ -~]{0,6}", 0..3))
        .prop_map(|(name, args)| json!({"id": format!("call_{name}"), "type": "function",
            "function": {"name": name, "arguments": serde_json::to_string(&args).unwrap_or_default()}}));
    let msg = (
        proptest::sample::select(&["system", "developer", "user", "assistant", "tool"][..]),
        arb_content(),
        proptest::collection::vec(call, 0..3),
    )
        .prop_map(|(role, content, calls)| {
            let mut m = json!({"role": role, "content": content});
            if role == "assistant" && !calls.is_empty() {
                m["tool_calls"] = Value::Array(calls);
            }
            if role == "tool" {
                m["tool_call_id"] = json!("call_x");
            }
            m
        });
    (proptest::collection::vec(msg, 0..6), any::<bool>()).prop_map(
        |(messages, stream)| json!({"model": "gpt-4o", "stream": stream, "messages": messages}),
    )
}

/// Realistic bodies and stream event payloads of every format.
fn samples() -> Vec<Value> {
    let mut v = vec![
        chat_request(),
        responses_request(),
        anthropic_request(),
        chat_response(),
    ];
    for sse in [CHAT_SSE, RESPONSES_SSE, ANTHROPIC_SSE] {
        for block in sse.split("\n\n") {
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                if let Ok(j) = serde_json::from_str(data) {
                    v.push(j);
                }
            }
        }
    }
    v
}

fn all_paths(v: &Value, here: &mut Vec<PathElem>, out: &mut Vec<Vec<PathElem>>) {
    out.push(here.clone());
    match v {
        Value::Object(o) => {
            for (key, x) in o {
                here.push(k(key));
                all_paths(x, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (n, x) in a.iter().enumerate() {
                here.push(i(n));
                all_paths(x, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn replace_at(root: &mut Value, path: &[PathElem], new: Value) {
    let mut cur = root;
    for p in path {
        let next = match p {
            PathElem::Key(key) => cur.get_mut(key.as_ref()),
            PathElem::Index(n) => cur.get_mut(*n),
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    *cur = new;
}

/// A realistic body with up to three subtrees replaced by arbitrary JSON.
fn arb_mutated() -> impl Strategy<Value = Value> {
    let all = samples();
    (
        proptest::sample::select(all),
        proptest::collection::vec((any::<proptest::sample::Index>(), arb_json()), 0..3),
    )
        .prop_map(|(mut v, muts)| {
            for (idx, new) in muts {
                let mut paths = Vec::new();
                all_paths(&v, &mut Vec::new(), &mut paths);
                let target = idx.get(&paths).clone();
                replace_at(&mut v, &target, new);
            }
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_arbitrary_json_never_panics(v in prop_oneof![arb_json(), arb_mutated()]) {
        for f in FORMATS {
            if let Ok(view) = parse_request(f, &v) {
                assert_identity_writes(&v, &view.segments);
                check_redaction(&view.segments, &v, &|x| parse_request(f, x).unwrap().segments);
            }
            if let Ok(view) = parse_response(f, &v) {
                assert_identity_writes(&v, &view.segments);
                check_redaction(&view.segments, &v, &|x| parse_response(f, x).unwrap().segments);
            }
            let ev = SseEvent { event: Some("content_block_delta".into()), data: v.to_string(), ..SseEvent::default() };
            let mut n = StreamNormalizer::new(f);
            for _ in 0..2 {
                if let Ok(items) = n.push(&ev) {
                    for (path, text) in item_paths(&items) {
                        let out = rebuild_event(&ev, &[(path.as_slice(), text.as_str())]).unwrap();
                        prop_assert_eq!(serde_json::from_str::<Value>(&out.data).unwrap(), v.clone());
                    }
                }
            }
        }
    }

    #[test]
    fn prop_chat_redaction_keeps_shape(body in arb_chat_body()) {
        check_request(ApiFormat::OpenAiChat, &body);
    }
}

fn items_for_chunks(format: ApiFormat, chunks: &[&[u8]]) -> Vec<StreamItem> {
    let mut d = SseDecoder::new();
    let mut frames = Vec::new();
    for c in chunks {
        d.feed(c, &mut frames).unwrap();
    }
    frames.extend(d.finish());
    let mut n = StreamNormalizer::new(format);
    frames
        .iter()
        .filter_map(SseFrame::event)
        .flat_map(|e| n.push(e).unwrap())
        .collect()
}

proptest! {
    /// Decoding + normalizing a provider stream split at arbitrary byte offsets gives
    /// the same items as the unsplit stream.
    #[test]
    fn prop_provider_streams_any_split(which in 0usize..3, cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..12)) {
        let (format, sse) = [
            (ApiFormat::OpenAiChat, CHAT_SSE),
            (ApiFormat::OpenAiResponses, RESPONSES_SSE),
            (ApiFormat::AnthropicMessages, ANTHROPIC_SSE),
        ][which];
        let bytes = sse.as_bytes();
        let mut at: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        at.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for c in at {
            chunks.push(&bytes[prev..c]);
            prev = c;
        }
        chunks.push(&bytes[prev..]);
        prop_assert_eq!(items_for_chunks(format, &chunks), items_for_chunks(format, &[bytes]));
    }
}

#[test]
fn tool_definitions_are_system_segments() {
    let schema = json!({"type": "object", "properties": {
        "to": {"type": "string", "description": "who"},
        "opts": {"type": "array", "items": {"type": "object", "description": "one option"}}}});
    let chat = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f", "description": "does f", "parameters": schema}}, "junk"]});
    let v = check_request(ApiFormat::OpenAiChat, &chat);
    use SegmentKind::*;
    assert_eq!(
        brief(&v.segments),
        vec![
            (User, "messages[0].content".into(), "hi".into()),
            (
                System,
                "tools[0].function.description".into(),
                "does f".into()
            ),
            (
                System,
                "tools[0].function.parameters.properties.to.description".into(),
                "who".into()
            ),
            (
                System,
                "tools[0].function.parameters.properties.opts.items.description".into(),
                "one option".into()
            ),
        ]
    );
    let anthropic = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "description": "does f", "input_schema": schema}]});
    let v = check_request(ApiFormat::AnthropicMessages, &anthropic);
    assert_eq!(v.segments.len(), 4);
    assert_eq!(path_to_string(&v.segments[1].path), "tools[0].description");
    assert_eq!(
        path_to_string(&v.segments[2].path),
        "tools[0].input_schema.properties.to.description"
    );
    // The fast path declines a request with tools (it would not see these texts).
    assert!(crate::provider::chat_request_texts(chat.to_string().as_bytes()).is_none());
}
