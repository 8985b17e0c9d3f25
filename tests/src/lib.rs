//! Bulkhead's end-to-end tests live in `it/` (one binary, many modules) and `ui/` (compile-fail cases).
//! This library holds what those tests share with `crash-child`, the process the crash tests kill.

pub mod crash;
