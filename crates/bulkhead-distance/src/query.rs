//! [`Query`]: a query vector checked once, for every batch and row it is scored against.

use crate::{DistanceError, Kernels, VectorArena};

/// Rejects a query of another dimension than the arena's.
pub(crate) fn check_dimension(query: &Query<'_>, arena: &VectorArena) -> Result<(), DistanceError> {
    if query.values.len() != arena.dim() {
        return Err(DistanceError::DimensionMismatch { left: query.values.len(), right: arena.dim() });
    }
    Ok(())
}

/// A query vector checked once: every element finite, its squared norm `q·q` computed and finite.
/// The batch and per-row calls that take one ([`Kernels::query_distances`],
/// [`Kernels::query_distances_all`], [`Kernels::distance_to_row`]) compare only its dimension, so a
/// search that scores many rows, over several segments, checks its query once.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    pub(crate) values: &'a [f32],
    pub(crate) squared_norm: f32,
}

impl<'a> Query<'a> {
    /// Checks `values` as a query with the active kernels (see [`Kernels::query`]).
    ///
    /// # Errors
    ///
    /// [`DistanceError::NonFinite`] for a NaN or infinite element; [`DistanceError::NormOverflow`]
    /// if `q·q` overflows.
    pub fn new(values: &'a [f32]) -> Result<Query<'a>, DistanceError> {
        Kernels::active().query(values)
    }

    /// The query's values.
    pub fn values(&self) -> &'a [f32] {
        self.values
    }

    /// Its dimension.
    pub fn dim(&self) -> usize {
        self.values.len()
    }

    /// `q·q`, computed once.
    pub fn squared_norm(&self) -> f32 {
        self.squared_norm
    }
}
