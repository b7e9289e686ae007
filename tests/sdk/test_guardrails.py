"""Guardrails seen through the official SDKs (shipped policies, plus a response deny rule on
the `deny_stack`): PII split across SSE chunks never reaches the client, a deny mid-stream
gives the SDK a clean end, redacted tool-call arguments still parse."""

from __future__ import annotations

import json

EMAIL = "maria.rossi@example.org"
CARD = "4111 1111 1111 1111"
REPLY = f"Sure. Write to {EMAIL}; the card on file is {CARD}. Anything else I can do for you today?"
SECRET_WORDS = "The launch plan is called Project Bluebird and ships in May."
MODEL = "gpt-4o-mini"
CLAUDE = "claude-test-model"


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def test_openai_stream_never_carries_split_pii(oai):
    for size in ("1", "2", "5"):
        stream = oai.chat.completions.create(
            model=MODEL,
            messages=user("hi"),
            stream=True,
            extra_headers={"x-mock-reply": REPLY, "x-mock-chunk-size": size},
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
        text = "".join(pieces)
        assert EMAIL not in text and "maria.rossi" not in text, text
        assert CARD not in text, text
        assert "[EMAIL_1]" in text and "1111" in text, text
        plain = oai.chat.completions.create(
            model=MODEL, messages=user("hi"), extra_headers={"x-mock-reply": REPLY}
        ).choices[0].message.content
        assert text == plain


def _tokens(logprobs) -> str:
    return "".join(t.token for t in (logprobs.content or [])) if logprobs else ""


def test_openai_logprobs_never_spell_redacted_pii(oai):
    """The provider's tokens spell the raw answer: they go with the text they belong to."""
    plain = oai.chat.completions.create(
        model=MODEL, messages=user("hi"), logprobs=True, extra_headers={"x-mock-reply": REPLY}
    ).choices[0]
    assert "[EMAIL_1]" in plain.message.content
    assert "maria.rossi" not in _tokens(plain.logprobs)
    for size in ("1", "3"):
        stream = oai.chat.completions.create(
            model=MODEL,
            messages=user("hi"),
            stream=True,
            logprobs=True,
            extra_headers={"x-mock-reply": REPLY, "x-mock-chunk-size": size},
        )
        tokens = "".join(_tokens(c.choices[0].logprobs) for c in stream if c.choices)
        assert "maria.rossi" not in tokens and "1111 1111" not in tokens, tokens
    clean = "The lighthouse keeper counted ships."
    kept = oai.chat.completions.create(
        model=MODEL, messages=user("hi"), logprobs=True, extra_headers={"x-mock-reply": clean}
    ).choices[0]
    assert _tokens(kept.logprobs) == clean


def test_anthropic_stream_never_carries_split_pii(claude):
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=200,
        messages=user("hi"),
        extra_headers={"x-mock-reply": REPLY, "x-mock-chunk-size": "3"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert EMAIL not in text and CARD not in text, text
    assert "[EMAIL_1]" in text
    assert final.content[0].text == text


def test_anthropic_thinking_never_carries_split_pii(claude):
    """Extended thinking is model output: the SDK's thinking block is redacted, keeps its
    signature, and the answer block is intact."""
    with claude.messages.stream(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("hi"),
        extra_headers={"x-mock-thinking": REPLY, "x-mock-reply": "All done.", "x-mock-chunk-size": "3"},
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    shown = "".join(e.delta.thinking for e in events if e.type == "content_block_delta" and e.delta.type == "thinking_delta")
    assert EMAIL not in shown and CARD not in shown, shown
    assert "[EMAIL_1]" in shown
    thinking = final.content[0]
    assert thinking.type == "thinking"
    assert thinking.thinking == shown
    assert thinking.signature.startswith("EqMock")
    assert final.content[1].text == "All done."
    plain = claude.messages.create(
        model=CLAUDE,
        max_tokens=2048,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("hi"),
        extra_headers={"x-mock-thinking": REPLY, "x-mock-reply": "All done."},
    )
    assert plain.content[0].type == "thinking"
    assert EMAIL not in plain.content[0].thinking and "[EMAIL_1]" in plain.content[0].thinking


def test_responses_stream_never_carries_split_pii(oai):
    events = list(
        oai.responses.create(
            model=MODEL,
            input="hi",
            stream=True,
            extra_headers={"x-mock-reply": REPLY, "x-mock-chunk-size": "2"},
        )
    )
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done = [e for e in events if e.type == "response.output_text.done"][0].text
    completed = [e for e in events if e.type == "response.completed"][0].response
    assert EMAIL not in deltas and EMAIL not in done, deltas
    assert deltas == done == completed.output[0].content[0].text
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_tool_call_arguments_are_redacted_and_parse(oai):
    tools = [{"type": "function", "function": {"name": "get_weather",
              "parameters": {"type": "object", "properties": {"location": {"type": "string"}}}}}]
    prompt = f"What is the weather in {EMAIL}"
    plain = oai.chat.completions.create(model=MODEL, messages=user(prompt), tools=tools)
    args = json.loads(plain.choices[0].message.tool_calls[0].function.arguments)
    assert args["location"] == "[EMAIL_1]", args
    stream = oai.chat.completions.create(model=MODEL, messages=user(prompt), tools=tools, stream=True)
    fragments, name = [], None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            fragments.append(tc.function.arguments or "")
            name = name or tc.function.name
    streamed = json.loads("".join(fragments))
    assert name == "get_weather"
    assert streamed == args


def test_openai_deny_mid_stream_ends_cleanly(deny_stack, openai_mod):
    client = openai_mod.OpenAI(base_url=f"{deny_stack.base}/v1", api_key="sk-test", max_retries=0, timeout=20.0)
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("hi"),
        stream=True,
        extra_headers={"x-mock-reply": SECRET_WORDS, "x-mock-chunk-size": "2"},
    )
    text, finish = "", None
    for chunk in stream:  # must not raise
        for c in chunk.choices:
            text += c.delta.content or ""
            finish = c.finish_reason or finish
    assert "bluebird" not in text.lower(), text
    assert finish == "content_filter"
    # The SDK's stream helper treats it exactly like a provider content filter: its typed
    # ContentFilterFinishReasonError, after a clean end of stream (no connection error).
    seen = ""
    try:
        with client.chat.completions.stream(
            model=MODEL, messages=user("hi"), extra_headers={"x-mock-reply": SECRET_WORDS}
        ) as s:
            for ev in s:
                if ev.type == "content.delta":
                    seen += ev.delta
            s.get_final_completion()
    except openai_mod.ContentFilterFinishReasonError:
        pass
    else:
        raise AssertionError("the stream helper did not report the content filter")
    assert "bluebird" not in seen.lower()


def test_anthropic_deny_mid_stream_ends_cleanly(deny_stack, anthropic_mod):
    client = anthropic_mod.Anthropic(base_url=deny_stack.base, api_key="sk-ant-test", max_retries=0, timeout=20.0)
    with client.messages.stream(
        model=CLAUDE,
        max_tokens=200,
        messages=user("hi"),
        extra_headers={"x-mock-reply": SECRET_WORDS, "x-mock-chunk-size": "2"},
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "bluebird" not in text.lower(), text
    assert final.stop_reason == "refusal"


def test_responses_deny_mid_stream_ends_cleanly(deny_stack, openai_mod):
    client = openai_mod.OpenAI(base_url=f"{deny_stack.base}/v1", api_key="sk-test", max_retries=0, timeout=20.0)
    events = list(
        client.responses.create(
            model=MODEL, input="hi", stream=True,
            extra_headers={"x-mock-reply": SECRET_WORDS, "x-mock-chunk-size": "2"},
        )
    )
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "content_filter"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "bluebird" not in text.lower()


def test_secret_in_prompt_is_denied_without_echo(oai, openai_mod):
    key = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u"
    try:
        oai.chat.completions.create(model=MODEL, messages=user(f"use {key}"))
    except openai_mod.BadRequestError as e:
        assert e.status_code == 400
        assert key not in str(e.body) and key not in e.message
        assert e.body["code"] == "policy_violation"
    else:
        raise AssertionError("a prompt carrying a GitHub token was not denied")
