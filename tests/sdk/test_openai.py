"""The official openai SDK works through Parapet unchanged: chat, streaming, tools, Responses, embeddings, errors."""

from __future__ import annotations

import json
import math

import pytest

MODEL = "gpt-4o-mini"
WEATHER_TOOL = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]


def user(text: str) -> list[dict]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


def test_chat_plain(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("hello parapet"))
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content == "You said: hello parapet"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_streaming_assembles_to_plain_text(oai):
    # Long enough that Parapet's streaming hold-back window (shipped policies are active)
    # releases text before the end: the reply must still arrive in several chunks.
    prompt = "stream me a longer answer, please. " * 12
    plain = oai.chat.completions.create(model=MODEL, messages=user(prompt)).choices[0].message.content
    stream = oai.chat.completions.create(
        model=MODEL, messages=user(prompt), stream=True, stream_options={"include_usage": True}
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert len(pieces) > 1, "the reply arrives in several chunks"
    assert "".join(pieces) == plain
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


def test_tool_call_plain(oai):
    r = oai.chat.completions.create(model=MODEL, messages=user("What's the weather in Oslo?"), tools=WEATHER_TOOL)
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert len(calls) == 1 and calls[0].type == "function"
    assert calls[0].function.name == "get_weather"
    args = json.loads(calls[0].function.arguments)
    assert args["location"] == "Oslo"


def test_tool_call_streaming_arguments_parse(oai):
    stream = oai.chat.completions.create(
        model=MODEL, messages=user("What's the weather in Oslo?"), tools=WEATHER_TOOL, stream=True
    )
    names, fragments, finish = {}, {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                if tc.function and tc.function.name:
                    names[tc.index] = tc.function.name
                if tc.function and tc.function.arguments:
                    fragments.setdefault(tc.index, []).append(tc.function.arguments)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert names == {0: "get_weather"}
    # Guarded tool arguments are held until complete (shipped policies apply to them).
    assert len(fragments[0]) >= 1
    assert json.loads("".join(fragments[0]))["location"] == "Oslo"
    assert finish == "tool_calls"


def test_responses_plain(oai):
    r = oai.responses.create(model=MODEL, input="hello responses")
    assert r.status == "completed"
    assert r.output_text == "You said: hello responses"


def test_responses_streaming_events(oai):
    events = list(oai.responses.create(model=MODEL, input="hello responses", stream=True))
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    for needed in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert needed in types, f"missing {needed}"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "You said: hello responses"
    assert events[-1].response.output_text == text


RESPONSES_TOOL = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]},
    }
]


def test_responses_function_call_plain_and_streaming(oai):
    r = oai.responses.create(model=MODEL, input="weather in Rome?", tools=RESPONSES_TOOL)
    call = r.output[0]
    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments)["location"] == "Rome"

    events = list(oai.responses.create(model=MODEL, input="weather in Rome?", tools=RESPONSES_TOOL, stream=True))
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    # Guarded arguments are held until complete, then sent as one delta.
    assert len(deltas) >= 1
    assert json.loads("".join(deltas)) == json.loads(call.arguments)
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].arguments == "".join(deltas)


def test_embeddings_default_base64_decodes_to_floats(stack, oai):
    stack.clear_mock_requests()
    default = oai.embeddings.create(model="text-embedding-3-small", input="embed me")
    sent = json.loads(stack.mock_requests()[-1]["body"])
    assert sent.get("encoding_format") == "base64", "the SDK asks for base64 by default"
    vec = default.data[0].embedding
    assert isinstance(vec, list) and len(vec) == 1536
    assert all(isinstance(x, float) for x in vec)
    assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, rel_tol=1e-3)
    floats = oai.embeddings.create(model="text-embedding-3-small", input="embed me", encoding_format="float")
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(vec, floats.data[0].embedding))


def test_models_list(oai):
    ids = [m.id for m in oai.models.list()]
    assert "gpt-4o-mini" in ids


def test_passthrough_authorization_reaches_provider(stack, openai_mod):
    client = openai_mod.OpenAI(base_url=f"{stack.base}/v1", api_key="sk-client-own-key", max_retries=0)
    stack.clear_mock_requests()
    client.chat.completions.create(model=MODEL, messages=user("who am I"))
    seen = [r for r in stack.mock_requests() if r["path"].startswith("/v1/chat/completions")]
    assert len(seen) == 1
    assert seen[0]["headers"].get("authorization") == "Bearer sk-client-own-key"
    assert json.loads(seen[0]["body"])["messages"][-1]["content"] == "who am I"


def test_provider_error_is_relayed(oai, openai_mod):
    with pytest.raises(openai_mod.BadRequestError) as err:
        oai.chat.completions.create(
            model=MODEL, messages=user("x"), extra_headers={"x-mock-status": "400"}
        )
    assert err.value.status_code == 400
    assert err.value.body["type"] == "invalid_request_error"
