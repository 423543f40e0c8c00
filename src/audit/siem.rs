//! Forwarding audit events to a SIEM (work in progress).
