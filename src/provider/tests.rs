//! Tests for provider normalization.
