//! Search: what a search asks for (`SearchRequest`), what it returns (`SearchHit`, with its
//! provenance), and the pipeline on a tenant's handle: limits and the tenant's policy, the
//! principal, the collection's state, the result cache, the allowed set before ranking, ranking,
//! and the hits' payloads, within a `Budget`.

use crate::attrs::MatchReason;
use crate::budget::Budget;
use crate::collection::IndexSource;
use crate::filter::{Filter, Principal};
use crate::tenant::{Audit, Tenant};
use crate::{QueryError, Result, limits};
use bulkhead_distance::{DistanceError, Query};
use bulkhead_storage::{
    CollectionInfo, DocId, MetaValue, Metric, Operation, PointRef, StorageError, TenantPolicy,
};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;

/// One search result.
#[derive(Clone)]
pub struct SearchHit {
    /// The document id.
    pub id: DocId,
    /// Cosine similarity, inner product, or Euclidean distance, by the collection's metric. Hits come
    /// best first: highest similarity, or smallest distance.
    pub score: f32,
    /// The chunk's text.
    pub text: String,
    /// Its metadata.
    pub metadata: BTreeMap<String, MetaValue>,
    /// Where it came from.
    pub source_uri: Option<String>,
    /// The write sequence number of the stored version.
    pub version: u64,
    /// The data-key generation that sealed it.
    pub key_generation: u32,
    /// Why the search's principal may see it (`None` for a search without a principal).
    pub matched_by: Option<MatchReason>,
    /// A fingerprint of the document's ACL, keyed per tenant: equal ACLs of one tenant have equal
    /// fingerprints, and it reveals nothing else.
    pub acl_fingerprint: [u8; 16],
    /// Which part of the index held it.
    pub index: IndexSource,
    /// The version of the tenant's policy the search ran under.
    pub policy_version: u64,
}

/// What a search asks for beyond the query vector.
#[derive(Debug, Clone, Copy)]
pub struct SearchRequest<'a> {
    /// How many hits (1 to [`limits::MAX_K`]).
    pub k: usize,
    /// Graph candidates kept (1 to [`limits::MAX_EF`]); `None` for the default.
    pub ef: Option<usize>,
    /// The user the search runs for: only documents whose ACL lets this principal read them are
    /// considered, before ranking. `None` searches every document (for a trusted caller).
    pub principal: Option<&'a Principal>,
    /// A metadata filter, also applied before ranking.
    pub filter: Option<&'a Filter>,
}

impl SearchRequest<'_> {
    /// `k` hits, every other option at its default.
    pub fn top(k: usize) -> SearchRequest<'static> {
        SearchRequest { k, ef: None, principal: None, filter: None }
    }
}

impl SearchHit {
    /// An upper bound of the bytes this hit takes in an encoded answer (its strings, metadata and
    /// fixed fields with their framing): what a [`Budget`]'s response bytes are charged.
    pub fn encoded_bytes_upper_bound(&self) -> usize {
        // Per string or value: its bytes plus a tag and a length prefix (at most 1 + 5 bytes).
        const FRAMING: usize = 6;
        let metadata: usize = self
            .metadata
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    MetaValue::Keyword(k) => k.len() + FRAMING,
                    MetaValue::Keywords(list) => {
                        list.iter().map(|k| k.len() + FRAMING).sum::<usize>() + FRAMING
                    }
                    MetaValue::Number(_) => 9 + FRAMING,
                    MetaValue::Bool(_) => 2 + FRAMING,
                };
                // A map entry is a message of its own: key, value, and their framing.
                key.len() + value + 3 * FRAMING
            })
            .sum();
        // The id, text and source URI, then the fixed fields (score, version, generations,
        // matched-by, the 16-byte fingerprint, the index source) and the hit's own framing.
        self.id.as_str().len()
            + self.text.len()
            + self.source_uri.as_ref().map_or(0, String::len)
            + 3 * FRAMING
            + metadata
            + 96
    }
}

impl fmt::Debug for SearchHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchHit")
            .field("score", &self.score)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

impl Tenant<'_> {
    /// Top-`k` search: the best `k` points come back with their text, metadata and provenance. Small
    /// collections (and dot collections) are scanned exactly; large cosine and L2 collections are
    /// searched through their HNSW segment plus an exact scan of recent writes. `k` must be 1 to
    /// [`limits::MAX_K`]; the query vector must match the collection's dimension and be finite (and
    /// not zero for cosine).
    pub fn search(&self, collection: &str, vector: &[f32], k: usize) -> Result<Vec<SearchHit>> {
        self.search_with_ef(collection, vector, k, None)
    }

    /// As [`Tenant::search`], with the number of candidates a graph search keeps (`ef`, 1 to
    /// [`limits::MAX_EF`]; raised to `k` if smaller). `None` uses the default (64, or `k` if larger).
    /// Collections searched exactly ignore it.
    pub fn search_with_ef(
        &self,
        collection: &str,
        vector: &[f32],
        k: usize,
        ef: Option<usize>,
    ) -> Result<Vec<SearchHit>> {
        self.search_request(collection, vector, &SearchRequest { k, ef, principal: None, filter: None })
    }

    /// Permission-aware search: the best `request.k` documents that the request's principal may read
    /// and its filter matches, chosen among those documents only (a principal gets
    /// `min(k, visible)` hits). Each hit says why the principal sees it. The filter is validated
    /// against its limits before any work.
    pub fn search_request(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
    ) -> Result<Vec<SearchHit>> {
        self.search_within(collection, vector, request, &Budget::unlimited())
    }

    /// As [`Tenant::search_request`], within `budget`: the search stops with
    /// [`QueryError::DeadlineExceeded`] or [`QueryError::Cancelled`] at its next check point once
    /// the budget's deadline passes or its flag is set, and fails with
    /// [`QueryError::ResourceExhausted`] as soon as the hits read so far would exceed the budget's
    /// response bytes (shared by every search of one budget), before reading more.
    pub fn search_within(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        budget: &Budget,
    ) -> Result<Vec<SearchHit>> {
        self.search_inner(collection, vector, request, None, true, budget)
    }

    /// The opaque reference of a document id, as [`Tenant::search_observed`] reports candidates.
    /// Test support only: compiled with the `test-support` feature, which no product crate enables.
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn point_ref(&self, collection: &str, id: &DocId) -> Result<PointRef> {
        let audit = Audit { documents: vec![id.as_str()], ..Audit::on(Operation::PointRef, collection) };
        self.audited(audit, || Ok(self.handle.point_ref(&self.collection_info(collection)?, id)?))
    }

    /// As [`Tenant::search_request`], showing `observe` the reference of every point a distance is
    /// computed for, graph routing included (for tests that prove no point outside the allowed set
    /// is ever scored). Test support only, like [`Tenant::point_ref`].
    #[cfg(feature = "test-support")]
    #[doc(hidden)]
    pub fn search_observed(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        observe: &mut dyn FnMut(PointRef),
    ) -> Result<Vec<SearchHit>> {
        self.search_inner(collection, vector, request, Some(observe), false, &Budget::unlimited())
    }

    /// The search itself; `use_cache` consults and fills the result cache, if there is one.
    fn search_inner(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        observe: Option<&mut dyn FnMut(PointRef)>,
        use_cache: bool,
        budget: &Budget,
    ) -> Result<Vec<SearchHit>> {
        let audit = Audit {
            principal: request.principal,
            query: Some(vector),
            ..Audit::on(Operation::Search, collection)
        };
        self.audited(audit, || self.search_unaudited(collection, vector, request, observe, use_cache, budget))
    }

    fn search_unaudited(
        &self,
        collection: &str,
        vector: &[f32],
        request: &SearchRequest<'_>,
        observe: Option<&mut dyn FnMut(PointRef)>,
        use_cache: bool,
        budget: &Budget,
    ) -> Result<Vec<SearchHit>> {
        let policy = self.handle.policy();
        check_limits(request, &policy.policy)?;
        let principal = self.effective_principal(request.principal)?;
        let principal = principal.as_ref();
        let info = self.collection_info(collection)?;
        let query = checked_query(vector, &info)?;
        budget.check()?;
        let entry = self.loaded_entry(&info)?;
        self.flush_if_idle(&info, &entry);
        budget.check()?;
        // The read guard is held until every hit's payload is read, so no write to this collection
        // can slip between ranking and reading (writers take the same lock for write).
        let guard = entry.state.read();
        let index = guard.as_ref().ok_or(StorageError::NotFound { what: "collection" })?;
        let cache = self.db.cache.as_ref().filter(|_| use_cache);
        // Read under the state's read lock: the epoch is the one of the state ranked below.
        let epoch = entry.epoch.load(Ordering::Relaxed);
        let cache_key =
            cache.map(|_| self.cache_key(&info, epoch, policy.version, principal, request, vector));
        if let (Some(cache), Some(key)) = (cache, cache_key.as_ref())
            && let Some(hits) = cache.get(key)
        {
            budget.charge(hits.iter().map(SearchHit::encoded_bytes_upper_bound).sum())?;
            return Ok(hits);
        }
        let attrs = index.attrs();
        let allowed = match (principal, request.filter) {
            (None, None) => None,
            (Some(p), None) => Some(attrs.visible(p)),
            (None, Some(f)) => Some(attrs.matching(f)),
            (Some(p), Some(f)) => Some(attrs.visible(p) & attrs.matching(f)),
        };
        let ranked = index.top_k(&query, request.k, request.ef, allowed.as_ref(), observe, budget)?;
        let mut hits = Vec::with_capacity(ranked.len());
        for (point_ref, score) in ranked {
            budget.check()?;
            let Some(point) = self.handle.get_payload_by_ref(&info, &point_ref)? else { continue };
            let hit = SearchHit {
                id: point.id,
                score,
                text: point.text,
                metadata: point.metadata,
                source_uri: point.source_uri,
                version: point.version,
                key_generation: point.key_generation,
                matched_by: principal.and_then(|p| attrs.slot(&point_ref).and_then(|s| attrs.reason(s, p))),
                acl_fingerprint: self.handle.acl_fingerprint(&point.acl),
                index: index.source(&point_ref).unwrap_or(IndexSource::Delta),
                policy_version: policy.version,
            };
            // Charged before it joins the answer: an answer over the budget is refused with at most
            // the budget's worth of hits built.
            budget.charge(hit.encoded_bytes_upper_bound())?;
            hits.push(hit);
        }
        if let (Some(cache), Some(key)) = (cache, cache_key) {
            cache.put(key, hits.clone());
        }
        Ok(hits)
    }

    /// The result cache's key of a search: everything its answer depends on (see `cache.rs`).
    fn cache_key(
        &self,
        info: &CollectionInfo,
        epoch: u64,
        policy_version: u64,
        principal: Option<&Principal>,
        request: &SearchRequest<'_>,
        vector: &[f32],
    ) -> Vec<u8> {
        let mut key = self.handle.tenant_uid().as_bytes().to_vec();
        key.extend_from_slice(&info.number().to_le_bytes());
        key.extend_from_slice(&epoch.to_le_bytes());
        key.extend_from_slice(&self.handle.write_generation().to_le_bytes());
        key.extend_from_slice(&policy_version.to_le_bytes());
        match principal {
            Some(p) => {
                key.push(1);
                p.canonical(&mut key);
            }
            None => key.push(0),
        }
        match request.filter {
            Some(f) => {
                key.push(1);
                f.canonical(&mut key);
            }
            None => key.push(0),
        }
        key.extend_from_slice(&(request.k as u64).to_le_bytes());
        key.extend_from_slice(&request.ef.map_or(0, |ef| ef as u64 + 1).to_le_bytes());
        key.extend(vector.iter().flat_map(|x| x.to_bits().to_le_bytes()));
        key
    }
}

/// The query vector checked once, at the edge, for everything downstream (the delta's scan and every
/// segment's walk compare only its dimension): the collection's dimension, finite components, a
/// squared norm below a quarter of `f32::MAX` (so that no distance to an accepted vector overflows),
/// and a direction for cosine. The same rules and messages as the storage crate's
/// `validate_vector`, in one pass for the norm.
fn checked_query<'a>(vector: &'a [f32], info: &CollectionInfo) -> Result<Query<'a>> {
    let invalid = |reason: String| QueryError::InvalidArgument { field: "vector", reason };
    if vector.len() != info.dimension {
        return Err(invalid(format!(
            "has dimension {}, the collection expects {}",
            vector.len(),
            info.dimension
        )));
    }
    let query = Query::new(vector).map_err(|e| match e {
        DistanceError::NonFinite { index } => invalid(format!("component {index} is NaN or infinite")),
        _ => invalid("has a norm too large for f32 arithmetic".into()),
    })?;
    if query.squared_norm() > f32::MAX / 4.0 {
        return Err(invalid("has a norm too large for f32 arithmetic".into()));
    }
    if info.metric == Metric::Cosine && vector.iter().all(|&x| x == 0.0) {
        return Err(invalid("is all zeros, which has no cosine direction".into()));
    }
    Ok(query)
}

/// Checks `k`, `ef` and the filter against the global limits and the tenant's policy, which may
/// tighten them, never loosen them.
fn check_limits(request: &SearchRequest<'_>, policy: &TenantPolicy) -> Result<()> {
    let tighter = |global: usize, own: Option<u32>| own.map_or(global, |own| global.min(own as usize));
    let max_k = tighter(limits::MAX_K, policy.max_k);
    let max_ef = tighter(limits::MAX_EF, policy.max_ef);
    if request.k == 0 || request.k > max_k {
        return Err(QueryError::InvalidArgument { field: "k", reason: format!("must be 1 to {max_k}") });
    }
    if request.ef.is_some_and(|ef| ef == 0 || ef > max_ef) {
        return Err(QueryError::InvalidArgument { field: "ef", reason: format!("must be 1 to {max_ef}") });
    }
    if let Some(filter) = request.filter {
        filter.validate_within(tighter(limits::MAX_FILTER_CONDITIONS, policy.max_filter_conditions))?;
    }
    Ok(())
}
