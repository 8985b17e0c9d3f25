//! Per-collection approximate nearest-neighbour index: HNSW graphs built in parallel over our
//! kernels, frozen into an immutable segment of our own format, and searched by our own loop.
//!
//! # Design
//!
//! [`FrozenSegment::build`] builds the HNSW graph over the vectors of a
//! [`VectorArena`](bulkhead_distance::VectorArena) in parallel with our distance kernels, by
//! default with our own construction (`native.rs`), which writes straight into flat arrays
//! (level 0 as one `Vec<u32>` with `2m` entries per node, the upper levels in a sparse form); the
//! hnsw_rs construction stays available with the `hnsw-rs` feature (`Builder::HnswRs`) and is
//! copied into the same arrays.
//! Search is ours: greedy descent, then a level-0 beam search over gathered neighbour batches, a
//! reusable visited set and packed-key heaps (see `search/`). Filters are applied during
//! traversal, small allowed sets and small segments are scanned exactly, and deletions are
//! tombstones. Segments serialise to a versioned, checksummed byte layout (see `format.rs`) that
//! loads without trusting its input.
//!
//! Every distance is computed by `bulkhead-distance`; this crate contains no `unsafe` code.

mod construct;
mod error;
pub mod eval;
mod filter;
mod format;
pub mod fvecs;
#[cfg(feature = "hnsw-rs")]
mod hnsw_rs_build;
mod native;
mod search;
mod segment;

#[cfg(test)]
mod tests;

pub use construct::{BuildOptions, Builder, HnswParams, lower_thread_priority};
pub use error::IndexError;
pub use filter::{Filter, IdSet, InternalId};
pub use format::FORMAT_VERSION;
pub use search::{Hit, Plan, Planner, SearchParams, SearchScratch, Strategy};
pub use segment::FrozenSegment;

pub use bulkhead_distance::Metric;
