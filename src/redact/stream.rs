//! Streaming redaction: the bounded hold-back window per stream position (filled next).
