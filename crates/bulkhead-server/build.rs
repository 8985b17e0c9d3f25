//! Compiles `proto/bulkhead/v1/bulkhead.proto` into Rust (messages, tonic server and client) and into
//! an encoded descriptor set for gRPC reflection, with protox, a protobuf compiler written in Rust, so
//! that the build needs no `protoc` on the machine. Every generated client and server uses
//! `crate::codec::BoundedCodec`, which counts a request's elements on the wire before decoding it,
//! and every message type names itself (`prost::Name`), which is how the codec finds its schema.

use prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = proto_root.join("bulkhead/v1/bulkhead.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&proto_root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("bulkhead_descriptor.bin"), descriptors.encode_to_vec())?;
    let mut config = tonic_prost_build::Config::new();
    config.enable_type_names();
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .codec_path("crate::codec::BoundedCodec")
        .compile_fds_with_config(descriptors, config)?;
    Ok(())
}
