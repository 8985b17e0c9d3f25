//! Saving a job's segment snapshot and listing the saved segments in the collection's head, through
//! the storage crate's sink; failures are logged, never fatal (the records stay the source of truth).

use bulkhead_storage::{IndexSnapshotSink, SavedSegment};

/// Saves a job's segment snapshot through `sink`, without listing it in the collection's head
/// yet; failures are logged, not fatal (the records remain the source of truth).
pub(crate) fn save_segment(sink: &IndexSnapshotSink, snapshot: &[u8]) -> Option<SavedSegment> {
    match sink.save_segment(snapshot) {
        Ok(saved) => saved,
        Err(e) => {
            tracing::warn!(
                error = %e,
                "an index snapshot could not be saved; it will be rebuilt after a restart"
            );
            None
        }
    }
}

/// Makes `segments` the collection's listed snapshots; a failure is logged.
pub(crate) fn list_segments(sink: &IndexSnapshotSink, segments: &[SavedSegment]) {
    if let Err(e) = sink.set_segments(segments) {
        tracing::warn!(
            error = %e,
            "the index snapshot head could not be written; segments will be rebuilt after a restart"
        );
    }
}
