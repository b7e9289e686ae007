//! Provider format normalization: requests/responses (JSON and SSE) into one view of text segments.
