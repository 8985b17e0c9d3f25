//! Bulkhead's end-to-end tests live in `it/` (one binary, many modules) and `ui/` (compile-fail cases).
