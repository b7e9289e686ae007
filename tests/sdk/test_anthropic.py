"""The official anthropic SDK works through Parapet unchanged: messages, streaming, tool use, errors."""

from __future__ import annotations

import json

import pytest

MODEL = "claude-mock-1"
WEATHER_TOOL = [
    {
        "name": "get_weather",
        "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    }
]


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_messages_plain(claude):
    m = claude.messages.create(model=MODEL, max_tokens=64, system="Be brief.", messages=user("hello claude"))
    assert m.type == "message" and m.role == "assistant"
    assert m.content[0].type == "text"
    assert m.content[0].text == "You said: hello claude"
    assert m.stop_reason == "end_turn"
    assert m.usage.output_tokens > 0


def test_messages_stream_helper_matches_plain(claude):
    prompt = "stream a sentence that is long enough to split"
    plain = claude.messages.create(model=MODEL, max_tokens=64, messages=user(prompt)).content[0].text
    with claude.messages.stream(model=MODEL, max_tokens=64, messages=user(prompt)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) > 1
    assert "".join(pieces) == plain
    assert final.content[0].text == plain
    assert final.stop_reason == "end_turn"


def test_messages_raw_stream_events(claude):
    events = list(claude.messages.create(model=MODEL, max_tokens=64, messages=user("raw events"), stream=True))
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert "content_block_start" in types and "content_block_stop" in types
    deltas = [e for e in events if e.type == "content_block_delta"]
    assert "".join(d.delta.text for d in deltas) == "You said: raw events"
    message_delta = next(e for e in events if e.type == "message_delta")
    assert message_delta.delta.stop_reason == "end_turn"
    assert message_delta.usage.output_tokens > 0


def test_tool_use_plain(claude):
    m = claude.messages.create(model=MODEL, max_tokens=64, tools=WEATHER_TOOL, messages=user("weather in Lisbon?"))
    assert m.stop_reason == "tool_use"
    block = m.content[0]
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.input["location"] == "Lisbon"


def test_tool_use_streaming_input_json(claude):
    with claude.messages.stream(
        model=MODEL, max_tokens=64, tools=WEATHER_TOOL, messages=user("weather in Lisbon?")
    ) as stream:
        partials = [e.delta.partial_json for e in stream if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
        final = stream.get_final_message()
    # Guarded tool input is held until complete (shipped policies apply to it).
    assert len(partials) >= 1
    assert json.loads("".join(partials))["location"] == "Lisbon"
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"location": "Lisbon", "unit": "celsius"}


def test_passthrough_api_key_reaches_provider(stack, anthropic_mod):
    client = anthropic_mod.Anthropic(base_url=stack.base, api_key="sk-ant-client-own", max_retries=0)
    stack.clear_mock_requests()
    client.messages.create(model=MODEL, max_tokens=16, messages=user("whose key"))
    seen = [r for r in stack.mock_requests() if r["path"].startswith("/v1/messages")]
    assert len(seen) == 1
    headers = seen[0]["headers"]
    # Older SDKs send the key as x-api-key, newer ones (anthropic>=2) as a Bearer token.
    assert headers.get("x-api-key") == "sk-ant-client-own" or headers.get("authorization") == "Bearer sk-ant-client-own", headers
    assert "anthropic-version" in seen[0]["headers"]
    assert json.loads(seen[0]["body"])["messages"][0]["content"] == "whose key"


def test_provider_error_is_relayed(claude, anthropic_mod):
    with pytest.raises(anthropic_mod.RateLimitError) as err:
        claude.messages.create(
            model=MODEL, max_tokens=16, messages=user("x"), extra_headers={"x-mock-status": "429"}
        )
    assert err.value.status_code == 429
    assert err.value.body["error"]["type"] == "rate_limit_error"
