//! Streaming export of audit events as JSONL and CSV (work in progress).
