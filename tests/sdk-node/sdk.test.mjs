// Official Node SDKs (openai, @anthropic-ai/sdk) through Parapet with the shipped policies
// plus a response-side deny rule for "project bluebird". Run by tests/sdk_node.rs:
//   node tests/sdk-node/sdk.test.mjs BASE_URL
// (BASE_URL: a Parapet in front of parapet-mock). Prints one line per check; exits 1 if any
// check failed.
import OpenAI from "openai";
import Anthropic from "@anthropic-ai/sdk";

const base = process.argv[2];
if (!base) {
  console.error("usage: node sdk.test.mjs BASE_URL");
  process.exit(2);
}
const EMAIL = "jane.doe@example.com";
const CARD = "4111 1111 1111 1111";
const REPLY = `Sure. Write to ${EMAIL}; the card on file is ${CARD}. Anything else?`;
const CODENAME = "The launch plan is called Project Bluebird and ships in May.";
const GH = "ghp_R8x2LqT7vN4mK9pW3zY6bH1cJ5dF0gS2aE7u";
const user = (content) => [{ role: "user", content }];
const oai = new OpenAI({ baseURL: `${base}/v1`, apiKey: "sk-test", maxRetries: 0, timeout: 20000 });
const claude = new Anthropic({ baseURL: base, apiKey: "sk-ant-test", maxRetries: 0, timeout: 20000 });

let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, what) {
  if (!cond) throw new Error(typeof what === "string" ? what : JSON.stringify(what).slice(0, 400));
}
const clean = (t) => !t.includes(EMAIL) && !t.includes("4111 1111 1111") && !t.includes("ghp_R8x2");

await check("chat: answer PII redacted", async () => {
  const r = await oai.chat.completions.create({ model: "gpt-4o-mini", messages: user("hi") }, { headers: { "x-mock-reply": REPLY } });
  const t = r.choices[0].message.content;
  assert(clean(t) && t.includes("[EMAIL_1]") && t.endsWith("Anything else?"), t);
});

for (const size of ["1", "2", "3", "7"]) {
  await check(`chat stream: PII split in chunks of ${size} never arrives`, async () => {
    const s = await oai.chat.completions.create(
      { model: "gpt-4o-mini", stream: true, messages: user("hi") },
      { headers: { "x-mock-reply": REPLY, "x-mock-chunk-size": size } },
    );
    let text = "";
    for await (const c of s) text += c.choices[0]?.delta?.content ?? "";
    assert(clean(text) && text.endsWith("Anything else?"), text);
  });
}

await check("chat stream helper: final completion redacted", async () => {
  const runner = oai.chat.completions.stream(
    { model: "gpt-4o-mini", messages: user("hi") },
    { headers: { "x-mock-reply": REPLY, "x-mock-chunk-size": "2" } },
  );
  const fc = await runner.finalChatCompletion();
  assert(clean(fc.choices[0].message.content), fc.choices[0].message.content);
});

await check("chat stream: deny mid-stream ends with content_filter, no error", async () => {
  const s = await oai.chat.completions.create(
    { model: "gpt-4o-mini", stream: true, messages: user("hi") },
    { headers: { "x-mock-reply": CODENAME, "x-mock-chunk-size": "2" } },
  );
  let text = "";
  let finish = null;
  for await (const c of s) {
    text += c.choices[0]?.delta?.content ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert(!text.toLowerCase().includes("bluebird") && finish === "content_filter", { text, finish });
});

await check("chat stream: a secret in the answer is redacted", async () => {
  const s = await oai.chat.completions.create(
    { model: "gpt-4o-mini", stream: true, messages: user("hi") },
    { headers: { "x-mock-reply": `Use the token ${GH} to deploy.`, "x-mock-chunk-size": "3" } },
  );
  let text = "";
  for await (const c of s) text += c.choices[0]?.delta?.content ?? "";
  assert(clean(text) && text.endsWith("to deploy."), text);
});

await check("chat stream: tool-call arguments arrive whole and parse", async () => {
  const tools = [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { location: { type: "string" } } } } }];
  const s = await oai.chat.completions.create({ model: "gpt-4o-mini", stream: true, tools, messages: user("What's the weather in Oslo?") });
  let args = "";
  let finish = null;
  for await (const c of s) {
    for (const t of c.choices[0]?.delta?.tool_calls ?? []) args += t.function?.arguments ?? "";
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert(JSON.parse(args).location === "Oslo" && finish === "tool_calls", { args, finish });
});

await check("responses stream: deltas redacted, completed event", async () => {
  const s = await oai.responses.create(
    { model: "gpt-4o-mini", input: "hi", stream: true },
    { headers: { "x-mock-reply": REPLY, "x-mock-chunk-size": "2" } },
  );
  let text = "";
  let done = false;
  for await (const ev of s) {
    if (ev.type === "response.output_text.delta") text += ev.delta;
    if (ev.type === "response.completed") done = true;
  }
  assert(done && clean(text), { done, text });
});

await check("anthropic: message redacted", async () => {
  const m = await claude.messages.create({ model: "claude-test-model", max_tokens: 100, messages: user("hi") }, { headers: { "x-mock-reply": REPLY } });
  assert(clean(m.content[0].text), m.content[0].text);
});

await check("anthropic stream helper: PII split in chunks never arrives", async () => {
  const s = claude.messages.stream(
    { model: "claude-test-model", max_tokens: 100, messages: user("hi") },
    { headers: { "x-mock-reply": REPLY, "x-mock-chunk-size": "2" } },
  );
  const m = await s.finalMessage();
  assert(clean(m.content[0].text) && m.content[0].text.endsWith("Anything else?"), m.content[0].text);
});

await check("anthropic stream: deny mid-stream ends cleanly (refusal stop reason)", async () => {
  const s = claude.messages.stream(
    { model: "claude-test-model", max_tokens: 100, messages: user("hi") },
    { headers: { "x-mock-reply": CODENAME, "x-mock-chunk-size": "2" } },
  );
  const m = await s.finalMessage();
  const t = m.content.map((b) => b.text ?? "").join("");
  assert(!t.toLowerCase().includes("bluebird"), t);
});

await check("request with a secret: 400 in OpenAI shape, never echoed", async () => {
  try {
    await oai.chat.completions.create({ model: "gpt-4o-mini", messages: user(`deploy with ${GH}`) });
  } catch (e) {
    assert(e instanceof OpenAI.APIError && e.status === 400, { status: e.status });
    assert(!JSON.stringify(e.error ?? {}).includes("ghp_R8x2") && !String(e.message).includes("ghp_R8x2"), e.error);
    return;
  }
  throw new Error("no error");
});

await check("request with a secret: 400 in Anthropic shape, never echoed", async () => {
  try {
    await claude.messages.create({ model: "claude-test-model", max_tokens: 10, messages: user(`deploy with ${GH}`) });
  } catch (e) {
    assert(e instanceof Anthropic.APIError && e.status === 400 && e.error?.type === "error", { status: e.status, error: e.error });
    assert(!JSON.stringify(e.error ?? {}).includes("ghp_R8x2"), e.error);
    return;
  }
  throw new Error("no error");
});

await check("embeddings: default base64 decodes", async () => {
  const r = await oai.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
  assert(r.data.length === 2 && r.data[0].embedding.length > 0 && Number.isFinite(r.data[0].embedding[0]), r.data.length);
});

await check("models list", async () => {
  const page = await oai.models.list();
  assert(page.data.length > 0, page.data);
});

console.log(failed ? `${failed} check(s) failed` : "all checks passed");
process.exit(failed ? 1 : 0);
