//! Programmable mock upstream speaking the OpenAI and Anthropic APIs, for tests and benchmarks.
