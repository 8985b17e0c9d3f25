//! Exact search: a collection's vectors in one 64-byte-aligned arena, scored in full for every query
//! with the SIMD kernels of `bulkhead-distance`.
//!
//! The arena only grows; an update appends the new vector and retires the old row, a delete retires
//! the row, and the arena is rebuilt without retired rows once they make up half of it.

use crate::{QueryError, Result};
use bulkhead_distance::{Kernels, Query, VectorArena};
use bulkhead_storage::{Metric, PointRef};
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// Every vector of one collection, decrypted into memory on first search and kept in step with writes.
pub(crate) struct FlatIndex {
    arena: VectorArena,
    /// The point each arena row holds, and its attribute slot.
    refs: Vec<PointRef>,
    slots: Vec<u32>,
    /// Whether each row is the current version of its point.
    live: Vec<bool>,
    /// The live row of each point.
    rows: HashMap<PointRef, u32>,
}

/// Approximate heap bytes of one entry of a `HashMap<PointRef, u32>` (key, value, control byte, at
/// the table's 7/8 load factor).
pub(crate) const MAP_ENTRY_BYTES: usize = (32 + 4) * 8 / 7 + 1;

impl FlatIndex {
    pub(crate) fn empty(dimension: usize) -> Result<FlatIndex> {
        Ok(FlatIndex {
            arena: VectorArena::new(dimension).map_err(QueryError::Kernel)?,
            refs: Vec::new(),
            slots: Vec::new(),
            live: Vec::new(),
            rows: HashMap::new(),
        })
    }

    pub(crate) fn upsert(&mut self, point_ref: PointRef, slot: u32, vector: &[f32]) -> Result<()> {
        let row = self.arena.push(vector).map_err(QueryError::Kernel)?;
        self.refs.push(point_ref);
        self.slots.push(slot);
        self.live.push(true);
        if let Some(old) = self.rows.insert(point_ref, row) {
            self.retire(old)?;
        }
        Ok(())
    }

    pub(crate) fn remove(&mut self, point_ref: &PointRef) -> Result<()> {
        match self.rows.remove(point_ref) {
            Some(row) => self.retire(row),
            None => Ok(()),
        }
    }

    /// Marks a row as no longer current, compacting once retired rows are half the arena.
    fn retire(&mut self, row: u32) -> Result<()> {
        self.live[row as usize] = false;
        if self.rows.len() * 2 < self.refs.len() {
            self.compact()?;
        }
        Ok(())
    }

    /// Rebuilds the arena with live rows only.
    fn compact(&mut self) -> Result<()> {
        let mut fresh = FlatIndex::empty(self.arena.dim())?;
        for (row, vector) in self.arena.iter().enumerate() {
            if self.live[row] {
                fresh.upsert(self.refs[row], self.slots[row], vector)?;
            }
        }
        *self = fresh;
        Ok(())
    }

    /// The `k` best live points for `query` among those whose slot is in `allowed` (all if `None`),
    /// best first, with their ranking distances (smaller is better; see [`score`]). Ties are broken
    /// by reference so that results are deterministic.
    pub(crate) fn top_k<'o>(
        &self,
        metric: Metric,
        query: &Query<'_>,
        k: usize,
        allowed: Option<&RoaringBitmap>,
        observe: Option<&mut (dyn FnMut(PointRef) + 'o)>,
    ) -> Result<Vec<(PointRef, f32)>> {
        let kernels = Kernels::active();
        // With an allowed set, only its live rows are scored (no distance is computed for a row
        // outside it); without one, every row, in one pass over the arena.
        let rows: Vec<u32> = match allowed {
            Some(set) => (0u32..)
                .zip(&self.slots)
                .filter(|&(row, slot)| self.live[row as usize] && set.contains(*slot))
                .map(|(row, _)| row)
                .collect(),
            None => Vec::new(),
        };
        let scan_all = allowed.is_none();
        if let Some(observe) = observe {
            let scored: Box<dyn Iterator<Item = u32>> =
                if scan_all { Box::new(0..self.arena.len() as u32) } else { Box::new(rows.iter().copied()) };
            scored.for_each(|row| observe(self.refs[row as usize]));
        }
        let mut distances = vec![0.0f32; if scan_all { self.arena.len() } else { rows.len() }];
        match (crate::metric::kernel_metric(metric), scan_all) {
            (Some(m), true) => kernels
                .query_distances_all(m, query, &self.arena, &mut distances)
                .map_err(QueryError::Kernel)?,
            (Some(m), false) => kernels
                .query_distances(m, query, &self.arena, &rows, &mut distances)
                .map_err(QueryError::Kernel)?,
            // The kernels' Dot distance assumes unit vectors (it clamps 1 - a·b at 0); a Dot
            // collection ranks by the raw inner product, largest first.
            (None, _) => {
                for (i, d) in distances.iter_mut().enumerate() {
                    let row = if scan_all { i as u32 } else { rows[i] };
                    let vector =
                        self.arena.get(row).ok_or(QueryError::Internal("row out of range".into()))?;
                    *d = -kernels.dot(query.values(), vector).map_err(QueryError::Kernel)?;
                }
            }
        }
        let mut scored: Vec<(f32, u32)> = if scan_all {
            distances
                .iter()
                .zip(0u32..)
                .filter(|&(_, row)| self.live[row as usize])
                .map(|(&d, row)| (d, row))
                .collect()
        } else {
            distances.iter().copied().zip(rows.iter().copied()).collect()
        };
        let better = |a: &(f32, u32), b: &(f32, u32)| {
            a.0.total_cmp(&b.0).then_with(|| self.refs[a.1 as usize].cmp(&self.refs[b.1 as usize]))
        };
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, better);
            scored.truncate(k);
        }
        scored.sort_unstable_by(better);
        Ok(scored.into_iter().map(|(d, row)| (self.refs[row as usize], d)).collect())
    }

    /// Approximate heap bytes: the arena (padded rows and norms), the row bookkeeping and the map.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.arena.len() * (self.arena.stride() + 1) * size_of::<f32>()
            + self.refs.len() * (size_of::<PointRef>() + 1)
            + self.rows.len() * MAP_ENTRY_BYTES
    }

    /// The current vector of a point, if this index holds it.
    pub(crate) fn vector(&self, point_ref: &PointRef) -> Option<&[f32]> {
        self.rows.get(point_ref).and_then(|&row| self.arena.get(row))
    }

    /// The number of live points.
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// The dimension of the vectors.
    pub(crate) fn dim(&self) -> usize {
        self.arena.dim()
    }

    /// Every live point with its vector, in row order.
    pub(crate) fn live_points(&self) -> impl Iterator<Item = (PointRef, &[f32])> + '_ {
        self.arena.iter().enumerate().filter(|(row, _)| self.live[*row]).map(|(row, v)| (self.refs[row], v))
    }
}
