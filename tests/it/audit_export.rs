//! Tests of audit export and SIEM forwarding (work in progress).
