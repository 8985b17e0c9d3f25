//! What one request may still spend: a deadline and a cancellation flag, checked at the search's
//! check points (before and after each index part is searched, before each hit's payload is read),
//! and a response-size budget charged as each hit is read, so that an answer over the limit is
//! refused before more than the limit is ever built.

use crate::{QueryError, Result};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A request's remaining allowance. One budget can cover several searches (a batch): the response
/// bytes are shared between them.
#[derive(Debug)]
pub struct Budget {
    deadline: Option<Instant>,
    cancelled: Option<Arc<AtomicBool>>,
    response_limit: usize,
    response_left: Cell<usize>,
}

impl Budget {
    /// No deadline, no cancellation, no response limit (the embedded API's default).
    pub fn unlimited() -> Budget {
        Budget {
            deadline: None,
            cancelled: None,
            response_limit: usize::MAX,
            response_left: Cell::new(usize::MAX),
        }
    }

    /// A budget of `response_bytes` for the answer (by [`crate::SearchHit::encoded_bytes_upper_bound`]),
    /// ending at `deadline` if one is given.
    pub fn new(deadline: Option<Instant>, response_bytes: usize) -> Budget {
        Budget {
            deadline,
            cancelled: None,
            response_limit: response_bytes,
            response_left: Cell::new(response_bytes),
        }
    }

    /// The same budget, also ended as soon as `flag` is set (by whoever stopped waiting for the
    /// answer: a client that went away, a deadline that passed outside).
    pub fn cancelled_by(mut self, flag: Arc<AtomicBool>) -> Budget {
        self.cancelled = Some(flag);
        self
    }

    /// A check point: fails once the deadline has passed or the request was cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        if self.cancelled.as_ref().is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(QueryError::Cancelled);
        }
        if self.deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            return Err(QueryError::DeadlineExceeded);
        }
        Ok(())
    }

    /// Charges `bytes` of answer; fails, charging nothing, if they do not fit what is left.
    pub(crate) fn charge(&self, bytes: usize) -> Result<()> {
        let left = self.response_left.get();
        if bytes > left {
            return Err(QueryError::ResourceExhausted {
                what: "response",
                reason: format!(
                    "the answer would exceed {} bytes; ask for fewer hits or split the batch",
                    self.response_limit
                ),
            });
        }
        self.response_left.set(left - bytes);
        Ok(())
    }
}

impl Default for Budget {
    fn default() -> Self {
        Budget::unlimited()
    }
}
