//! The in-memory attribute index of one collection: every point's ACL and metadata as Roaring
//! bitmaps over *slots* (a small number per point, stable across updates of the point), so that a
//! principal's visible set and a filter's matching set are a few bitmap operations, computed before
//! ranking. Rebuilt from the sealed payloads when the collection loads; never persisted.

use crate::filter::{Filter, FilterValue, Principal};
use bulkhead_storage::{Acl, MetaValue, PointRef};
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap};

/// A keyword or flag value, as an equality key.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Term {
    Keyword(String),
    Bool(bool),
}

/// Why a principal may see a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchReason {
    /// The ACL names the principal's user.
    User,
    /// The ACL names one of the principal's groups.
    Group,
    /// The ACL is tenant-wide.
    TenantWide,
}

/// Whether an ACL lets the principal read (the rule the bitmaps implement, for one document).
pub(crate) fn acl_allows(acl: &Acl, principal: &Principal) -> bool {
    match acl {
        Acl::TenantWide => true,
        Acl::Restricted { users, groups } => {
            users.iter().any(|u| u == principal.user())
                || groups.iter().any(|g| principal.groups().binary_search(g).is_ok())
        }
    }
}

/// A number as a key whose order is the numbers' order (-0.0 and 0.0 are one key).
fn number_key(x: f64) -> u64 {
    let bits = if x == 0.0 { 0.0f64.to_bits() } else { x.to_bits() };
    if bits >> 63 == 1 { !bits } else { bits | (1 << 63) }
}

struct Attrs {
    acl: Acl,
    metadata: BTreeMap<String, MetaValue>,
}

#[derive(Default)]
pub(crate) struct AttrIndex {
    slots: HashMap<PointRef, u32>,
    /// By slot: the point, and its attributes while it exists.
    refs: Vec<PointRef>,
    attrs: Vec<Option<Attrs>>,
    live: RoaringBitmap,
    tenant_wide: RoaringBitmap,
    users: HashMap<String, RoaringBitmap>,
    groups: HashMap<String, RoaringBitmap>,
    terms: HashMap<(String, Term), RoaringBitmap>,
    numbers: HashMap<String, BTreeMap<u64, RoaringBitmap>>,
}

impl AttrIndex {
    /// Records a point's attributes; returns its slot (the same slot if the point existed).
    pub(crate) fn upsert(
        &mut self,
        point_ref: PointRef,
        acl: &Acl,
        metadata: &BTreeMap<String, MetaValue>,
    ) -> u32 {
        let slot = match self.slots.get(&point_ref) {
            Some(&slot) => {
                self.unindex(slot);
                slot
            }
            None => {
                let slot = self.refs.len() as u32;
                self.slots.insert(point_ref, slot);
                self.refs.push(point_ref);
                self.attrs.push(None);
                slot
            }
        };
        let attrs = Attrs { acl: acl.clone(), metadata: metadata.clone() };
        self.index(slot, &attrs);
        self.attrs[slot as usize] = Some(attrs);
        slot
    }

    /// Forgets a deleted point. Its slot is not reused until the collection reloads.
    pub(crate) fn remove(&mut self, point_ref: &PointRef) {
        if let Some(slot) = self.slots.remove(point_ref) {
            self.unindex(slot);
            self.attrs[slot as usize] = None;
        }
    }

    pub(crate) fn slot(&self, point_ref: &PointRef) -> Option<u32> {
        self.slots.get(point_ref).copied()
    }

    pub(crate) fn point(&self, slot: u32) -> Option<PointRef> {
        self.refs.get(slot as usize).copied()
    }

    fn index(&mut self, slot: u32, attrs: &Attrs) {
        self.live.insert(slot);
        match &attrs.acl {
            Acl::TenantWide => {
                self.tenant_wide.insert(slot);
            }
            Acl::Restricted { users, groups } => {
                for user in users {
                    self.users.entry(user.clone()).or_default().insert(slot);
                }
                for group in groups {
                    self.groups.entry(group.clone()).or_default().insert(slot);
                }
            }
        }
        for (field, value) in &attrs.metadata {
            let mut term = |term: Term| {
                self.terms.entry((field.clone(), term)).or_default().insert(slot);
            };
            match value {
                MetaValue::Keyword(k) => term(Term::Keyword(k.clone())),
                MetaValue::Keywords(ks) => ks.iter().for_each(|k| term(Term::Keyword(k.clone()))),
                MetaValue::Bool(b) => term(Term::Bool(*b)),
                MetaValue::Number(n) => {
                    self.numbers
                        .entry(field.clone())
                        .or_default()
                        .entry(number_key(*n))
                        .or_default()
                        .insert(slot);
                }
            }
        }
    }

    fn unindex(&mut self, slot: u32) {
        let Some(attrs) = self.attrs.get(slot as usize).and_then(Option::as_ref) else { return };
        self.live.remove(slot);
        self.tenant_wide.remove(slot);
        fn drop_from<K: std::hash::Hash + Eq>(map: &mut HashMap<K, RoaringBitmap>, key: &K, slot: u32) {
            if let Some(set) = map.get_mut(key) {
                set.remove(slot);
                if set.is_empty() {
                    map.remove(key);
                }
            }
        }
        if let Acl::Restricted { users, groups } = &attrs.acl {
            for user in users {
                drop_from(&mut self.users, user, slot);
            }
            for group in groups {
                drop_from(&mut self.groups, group, slot);
            }
        }
        for (field, value) in &attrs.metadata {
            let terms: Vec<Term> = match value {
                MetaValue::Keyword(k) => vec![Term::Keyword(k.clone())],
                MetaValue::Keywords(ks) => ks.iter().map(|k| Term::Keyword(k.clone())).collect(),
                MetaValue::Bool(b) => vec![Term::Bool(*b)],
                MetaValue::Number(n) => {
                    if let Some(by_value) = self.numbers.get_mut(field) {
                        drop_from_btree(by_value, number_key(*n), slot);
                        if by_value.is_empty() {
                            self.numbers.remove(field);
                        }
                    }
                    Vec::new()
                }
            };
            for term in terms {
                drop_from(&mut self.terms, &(field.clone(), term), slot);
            }
        }
    }

    /// Every point the principal may see.
    pub(crate) fn visible(&self, principal: &Principal) -> RoaringBitmap {
        let mut out = self.tenant_wide.clone();
        if let Some(set) = self.users.get(principal.user()) {
            out |= set;
        }
        for group in principal.groups() {
            if let Some(set) = self.groups.get(group) {
                out |= set;
            }
        }
        out
    }

    /// Every point the (validated, so at most `MAX_FILTER_DEPTH` deep) filter matches.
    pub(crate) fn matching(&self, filter: &Filter) -> RoaringBitmap {
        let term =
            |field: &String, term: Term| self.terms.get(&(field.clone(), term)).cloned().unwrap_or_default();
        let range = |field: &String, min: u64, max: u64| {
            let mut out = RoaringBitmap::new();
            if let Some(by_value) = self.numbers.get(field) {
                for set in by_value.range(min..=max).map(|(_, set)| set) {
                    out |= set;
                }
            }
            out
        };
        match filter {
            Filter::Eq { field, value: FilterValue::Keyword(k) } => term(field, Term::Keyword(k.clone())),
            Filter::Eq { field, value: FilterValue::Bool(b) } => term(field, Term::Bool(*b)),
            Filter::Eq { field, value: FilterValue::Number(n) } => {
                range(field, number_key(*n), number_key(*n))
            }
            Filter::In { field, values } => {
                let mut out = RoaringBitmap::new();
                for value in values {
                    if let Some(set) = self.terms.get(&(field.clone(), Term::Keyword(value.clone()))) {
                        out |= set;
                    }
                }
                out
            }
            Filter::Range { field, min, max } => {
                range(field, min.map_or(0, number_key), max.map_or(u64::MAX, number_key))
            }
            Filter::And(children) => {
                let mut out = self.live.clone();
                for child in children {
                    out &= self.matching(child);
                }
                out
            }
            Filter::Or(children) => {
                let mut out = RoaringBitmap::new();
                for child in children {
                    out |= self.matching(child);
                }
                out
            }
            Filter::Not(child) => &self.live - &self.matching(child),
        }
    }

    /// Why the principal sees the point in `slot` (`None` if it does not).
    pub(crate) fn reason(&self, slot: u32, principal: &Principal) -> Option<MatchReason> {
        let attrs = self.attrs.get(slot as usize)?.as_ref()?;
        match &attrs.acl {
            Acl::TenantWide => Some(MatchReason::TenantWide),
            Acl::Restricted { users, groups } => {
                if users.iter().any(|u| u == principal.user()) {
                    Some(MatchReason::User)
                } else if groups.iter().any(|g| principal.groups().binary_search(g).is_ok()) {
                    Some(MatchReason::Group)
                } else {
                    None
                }
            }
        }
    }

    /// Approximate heap bytes (the bitmaps' serialised sizes stand for their memory).
    pub(crate) fn memory_bytes(&self) -> usize {
        let sets = self.users.values().chain(self.groups.values()).chain(self.terms.values());
        let numbers = self.numbers.values().flat_map(|m| m.values());
        let bitmaps: usize = sets.chain(numbers).map(RoaringBitmap::serialized_size).sum();
        bitmaps + self.refs.len() * (size_of::<PointRef>() + size_of::<Option<Attrs>>() + 64)
    }
}

fn drop_from_btree(map: &mut BTreeMap<u64, RoaringBitmap>, key: u64, slot: u32) {
    if let Some(set) = map.get_mut(&key) {
        set.remove(slot);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}
