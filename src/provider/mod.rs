//! Provider format normalization: requests/responses (JSON and SSE) into one view of text segments.
//!
//! Every supported API body (OpenAI Chat Completions, Responses, Embeddings, legacy
//! Completions, Anthropic Messages) is parsed into a list of [`Segment`]s: a piece of
//! text, what it is ([`SegmentKind`]) and where it lives in the JSON (a [`PathElem`]
//! path). The guardrail engine scans segments and writes redactions back with
//! [`set_text`] / [`set_segment_text`], which keep the JSON shape (same keys, same
//! types), so tool calls stay intact.
//!
//! Submodules: [`path`] (paths and write-back), [`request`] and [`response`]
//! (non-streaming bodies), [`stream`] (SSE event forms, per-event normalizer and
//! event rebuild).
//!
//! Tool-call arguments: OpenAI carries them as a JSON-*encoded string*; the segment
//! text is that string verbatim. Anthropic `tool_use.input` is a JSON *object*; it is
//! exposed as ONE [`SegmentKind::ToolCallArguments`] segment whose text is the
//! compact serialization of the object, and write-back parses the new text and
//! requires an object again (see [`set_text`]).
//!
//! Parsers never panic: malformed known fields give a [`NormalizeError`] naming the
//! field; unknown fields, roles, item and part types are ignored.

mod fast_chat;
pub use fast_chat::{
    answer_summary, answer_texts, chat_input_text, chat_request_texts, input_text_of, AnswerSummary,
};
pub mod path;
pub mod request;
pub mod response;
pub mod splice;
pub mod stream;
pub mod strict;
mod walk;

pub use path::{
    get_path, may_have_logprobs, path_to_string, set_segment_text, set_text, strip_logprobs,
    PathElem,
};
pub use request::{parse_request, RequestView};
pub use response::{parse_response, ErrorInfo, Finish, ResponseView, ToolCall, Usage};
pub use stream::{rebuild_event, StreamItem, StreamNormalizer, StreamPos};

/// A supported provider API body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFormat {
    /// OpenAI `/v1/chat/completions`.
    OpenAiChat,
    /// OpenAI `/v1/responses`.
    OpenAiResponses,
    /// OpenAI `/v1/embeddings`.
    OpenAiEmbeddings,
    /// OpenAI legacy `/v1/completions`.
    OpenAiCompletions,
    /// Anthropic `/v1/messages`.
    AnthropicMessages,
}

impl ApiFormat {
    /// A short stable name for logs and events (`openai.chat`, `anthropic.messages`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFormat::OpenAiChat => "openai.chat",
            ApiFormat::OpenAiResponses => "openai.responses",
            ApiFormat::OpenAiEmbeddings => "openai.embeddings",
            ApiFormat::OpenAiCompletions => "openai.completions",
            ApiFormat::AnthropicMessages => "anthropic.messages",
        }
    }

    /// Whether errors for this format use the Anthropic error shape.
    pub fn is_anthropic(self) -> bool {
        matches!(self, ApiFormat::AnthropicMessages)
    }
}

/// The format for a request path (query string and trailing `/` ignored), `None` if not
/// inspected. Matches `/v1/<endpoint>` exactly, optionally after a base prefix (e.g.
/// `/openai/v1/chat/completions`). `/v1/messages/count_tokens`, `/v1/responses/{id}` and
/// other sub-resources are not request bodies of these formats and give `None`.
pub fn format_for_path(path: &str) -> Option<ApiFormat> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let path = path.trim_end_matches('/');
    const TABLE: [(&str, ApiFormat); 5] = [
        ("/v1/chat/completions", ApiFormat::OpenAiChat),
        ("/v1/responses", ApiFormat::OpenAiResponses),
        ("/v1/embeddings", ApiFormat::OpenAiEmbeddings),
        ("/v1/completions", ApiFormat::OpenAiCompletions),
        ("/v1/messages", ApiFormat::AnthropicMessages),
    ];
    TABLE.iter().find_map(|(suffix, f)| {
        let prefix = path.strip_suffix(suffix)?;
        (prefix.is_empty() || prefix.starts_with('/')).then_some(*f)
    })
}

/// What a segment of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// System prompt (chat `system` role, Responses `instructions`, Anthropic `system`).
    System,
    /// End-user text.
    User,
    /// Model output, or assistant turns in a request history (incl. refusals).
    Assistant,
    /// The model's reasoning shown in an answer: Anthropic `thinking` blocks, Responses
    /// reasoning summaries. Guarded as model output ([`SegmentKind::Assistant`]'s rules),
    /// kept out of the recorded output summary.
    Reasoning,
    /// OpenAI `developer` role.
    Developer,
    /// The name of a called tool.
    ToolCallName,
    /// Tool-call arguments (JSON text; see the module doc for the string/object contract).
    ToolCallArguments,
    /// Output of a tool fed back to the model.
    ToolResult,
    /// An embeddings input string.
    EmbeddingInput,
    /// A legacy completions prompt (or suffix).
    Prompt,
    /// Text under an unrecognised role.
    Other,
}

impl SegmentKind {
    /// The kind for a message role (`system`, `developer`, `user`, `assistant`, `tool`, `function`).
    pub fn from_role(role: &str) -> Self {
        match role {
            "system" => SegmentKind::System,
            "developer" => SegmentKind::Developer,
            "user" => SegmentKind::User,
            "assistant" => SegmentKind::Assistant,
            "tool" | "function" => SegmentKind::ToolResult,
            _ => SegmentKind::Other,
        }
    }
}

/// One piece of inspectable text and its location in the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// What the text is.
    pub kind: SegmentKind,
    /// The message role it belongs to, if any.
    pub role: Option<String>,
    /// Tool-call id (`tool_calls[].id`, `tool_call_id`, `call_id`, `tool_use_id`) if relevant.
    pub tool_call_id: Option<String>,
    /// Tool name if relevant and known.
    pub tool_name: Option<String>,
    /// The text (for Anthropic `tool_use.input`, the compact JSON of the object).
    pub text: String,
    /// Where the text lives in the body JSON.
    pub path: Vec<PathElem>,
}

impl Segment {
    /// A segment without role or tool information.
    pub fn new(kind: SegmentKind, text: impl Into<String>, path: Vec<PathElem>) -> Self {
        Self {
            kind,
            role: None,
            tool_call_id: None,
            tool_name: None,
            text: text.into(),
            path,
        }
    }

    fn role(mut self, role: Option<&str>) -> Self {
        self.role = role.map(str::to_owned);
        self
    }

    fn tool(mut self, id: Option<&str>, name: Option<&str>) -> Self {
        self.tool_call_id = id.map(str::to_owned);
        self.tool_name = name.map(str::to_owned);
        self
    }
}

/// Normalization and write-back failures; `field` is a rendered path like `messages[2].content`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    /// The body (or SSE data) is not valid JSON.
    #[error("invalid JSON: {0}")]
    InvalidJson(String),
    /// An object repeats a key: which value a reader takes is ambiguous (see [`strict`]).
    #[error("an object repeats a key")]
    DuplicateKey,
    /// The body root is not a JSON object.
    #[error("body is not a JSON object")]
    NotAnObject,
    /// A required field is absent.
    #[error("missing field `{field}`")]
    MissingField {
        /// Rendered path of the field.
        field: String,
    },
    /// A known field has an unexpected JSON type.
    #[error("field `{field}` has the wrong type (expected {expected})")]
    WrongType {
        /// Rendered path of the field.
        field: String,
        /// The accepted types.
        expected: &'static str,
    },
    /// A write-back path does not exist in the value.
    #[error("path `{field}` not found")]
    PathNotFound {
        /// Rendered path.
        field: String,
    },
    /// The value at a write-back path cannot hold text (number, bool, null).
    #[error("field `{field}` is not text")]
    NotText {
        /// Rendered path.
        field: String,
    },
    /// A replacement violates the field's contract (must be JSON / must be an object).
    #[error("replacement for `{field}` must be {expected}")]
    InvalidReplacement {
        /// Rendered path.
        field: String,
        /// What the replacement must be.
        expected: &'static str,
    },
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
