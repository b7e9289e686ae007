//! Incremental server-sent-events decoder and encoder (sans-io).
