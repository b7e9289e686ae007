//! Parapet: an inline guardrail proxy for AI traffic (library crate; `main.rs` is the CLI).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod eval;
pub mod mock;
pub mod policy;
pub mod provider;
pub mod sse;
