//! Exact search: a collection's vectors in one contiguous arena, scored in full for every query.

use crate::Result;
use bulkhead_storage::{CollectionInfo, Metric, PointRef, TenantHandle};
use std::collections::HashMap;

/// Every vector of one collection, decrypted into memory on first search and kept in step with writes.
pub(crate) struct FlatIndex {
    dimension: usize,
    refs: Vec<PointRef>,
    vectors: Vec<f32>,
    positions: HashMap<PointRef, usize>,
}

impl FlatIndex {
    /// Loads a collection's vectors from storage.
    pub(crate) fn load(handle: &TenantHandle<'_>, collection: &CollectionInfo) -> Result<FlatIndex> {
        let mut index = FlatIndex {
            dimension: collection.dimension,
            refs: Vec::new(),
            vectors: Vec::new(),
            positions: HashMap::new(),
        };
        handle.scan_vectors(collection, |point_ref, vector| index.upsert(point_ref, vector))?;
        Ok(index)
    }

    pub(crate) fn upsert(&mut self, point_ref: PointRef, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dimension);
        match self.positions.get(&point_ref) {
            Some(&i) => self.vectors[i * self.dimension..(i + 1) * self.dimension].copy_from_slice(vector),
            None => {
                self.positions.insert(point_ref, self.refs.len());
                self.refs.push(point_ref);
                self.vectors.extend_from_slice(vector);
            }
        }
    }

    pub(crate) fn remove(&mut self, point_ref: &PointRef) {
        let Some(i) = self.positions.remove(point_ref) else { return };
        let last = self.refs.len() - 1;
        if i != last {
            let moved = self.refs[last];
            self.refs[i] = moved;
            self.positions.insert(moved, i);
            let (head, tail) = self.vectors.split_at_mut(last * self.dimension);
            head[i * self.dimension..(i + 1) * self.dimension].copy_from_slice(&tail[..self.dimension]);
        }
        self.refs.pop();
        self.vectors.truncate(last * self.dimension);
    }

    /// The `k` best points for `query`, best first, with their scores. Ties are broken by reference so
    /// that results are deterministic.
    pub(crate) fn top_k(&self, metric: Metric, query: &[f32], k: usize) -> Vec<(PointRef, f32)> {
        let query_norm = bulkhead_distance::dot(query, query).sqrt();
        let mut scored: Vec<(f32, usize)> = self
            .vectors
            .chunks_exact(self.dimension)
            .enumerate()
            .map(|(i, v)| (rank_distance(metric, query, query_norm, v), i))
            .collect();
        let better = |a: &(f32, usize), b: &(f32, usize)| {
            a.0.total_cmp(&b.0).then_with(|| self.refs[a.1].cmp(&self.refs[b.1]))
        };
        if scored.len() > k {
            scored.select_nth_unstable_by(k - 1, better);
            scored.truncate(k);
        }
        scored.sort_unstable_by(better);
        scored.into_iter().map(|(d, i)| (self.refs[i], score(metric, d))).collect()
    }
}

/// A distance where smaller is better, for ranking.
fn rank_distance(metric: Metric, query: &[f32], query_norm: f32, v: &[f32]) -> f32 {
    match metric {
        Metric::Dot => -bulkhead_distance::dot(query, v),
        Metric::L2 => bulkhead_distance::l2_squared(query, v),
        Metric::Cosine => {
            let norm = bulkhead_distance::dot(v, v).sqrt();
            (1.0 - bulkhead_distance::dot(query, v) / (query_norm * norm)).clamp(0.0, 2.0)
        }
    }
}

/// The score reported to clients: similarity for cosine and dot, distance for L2.
fn score(metric: Metric, rank_distance: f32) -> f32 {
    match metric {
        Metric::Dot => -rank_distance,
        Metric::L2 => rank_distance.sqrt(),
        Metric::Cosine => 1.0 - rank_distance,
    }
}
