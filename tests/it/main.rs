//! End-to-end tests over a real RocksDB directory on disk: isolation, encryption at rest, durability,
//! authentication and bad input. One binary, one module per subject.

mod archive;
mod audit;
mod auth;
mod background;
mod bad_input;
mod blast_radius;
mod break_glass;
mod compile_fail;
mod durability;
mod golden;
mod graph;
mod invariants;
mod isolation;
mod keyring;
mod limits_doc;
mod plaintext;
mod quotas;
mod readme;
mod retrieval;
mod rotation;
mod supply_chain;
mod swap;
mod tiers;
mod util;
