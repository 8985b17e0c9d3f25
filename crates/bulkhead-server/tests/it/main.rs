//! The gRPC server end to end, in process: a real server per test on 127.0.0.1 with an ephemeral
//! port (`harness`), driven over gRPC and raw HTTP/2 (`wire`). The `bulkhead` binary's own tests
//! (`serve`, `admin`, `client`, the embedded commands, `bench`) are in `crates/bulkhead-cli/tests/it/`.

mod admission;
mod archive;
mod auth;
mod break_glass;
mod certs;
mod config;
mod grpc;
mod harness;
mod limits;
mod logs;
mod metrics;
mod own_keys;
mod quotas;
mod storage_quotas;
mod tls;
mod wire;
