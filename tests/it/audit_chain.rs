//! Tests of the audit hash chain (work in progress).
