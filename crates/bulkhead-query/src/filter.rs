//! Who is searching and what they asked for: the [`Principal`] a search runs as, the metadata
//! [`Filter`] it applies, and their limits, checked before any work is done.

use crate::{QueryError, Result, limits};
use std::fmt;

fn invalid(field: &'static str, reason: impl Into<String>) -> QueryError {
    QueryError::InvalidArgument { field, reason: reason.into() }
}

fn check_name(field: &'static str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() > limits::MAX_PRINCIPAL_BYTES {
        return Err(invalid(field, format!("must be 1 to {} bytes", limits::MAX_PRINCIPAL_BYTES)));
    }
    Ok(())
}

/// The user a search runs on behalf of, with the groups the user belongs to. A document is visible
/// to it if the document's ACL is tenant-wide, names the user, or names one of the groups.
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    user: String,
    groups: Vec<String>,
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Principal(<redacted>, {} groups)", self.groups.len())
    }
}

impl Principal {
    /// A principal; groups are deduplicated. The user and each group are 1 to
    /// [`limits::MAX_PRINCIPAL_BYTES`] bytes, and there are at most [`limits::MAX_PRINCIPAL_GROUPS`]
    /// groups.
    pub fn new<G: Into<String>>(
        user: impl Into<String>,
        groups: impl IntoIterator<Item = G>,
    ) -> Result<Principal> {
        let user = user.into();
        check_name("principal.user", &user)?;
        let mut list = Vec::new();
        for group in groups {
            if list.len() == limits::MAX_PRINCIPAL_GROUPS {
                return Err(invalid(
                    "principal.groups",
                    format!("at most {} groups", limits::MAX_PRINCIPAL_GROUPS),
                ));
            }
            let group = group.into();
            check_name("principal.groups", &group)?;
            list.push(group);
        }
        list.sort_unstable();
        list.dedup();
        Ok(Principal { user, groups: list })
    }

    /// The user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The groups, sorted and deduplicated.
    pub fn groups(&self) -> &[String] {
        &self.groups
    }
}

/// A value compared by equality.
#[derive(Clone, PartialEq)]
pub enum FilterValue {
    /// Matches a keyword field equal to it, or a keyword-set field containing it.
    Keyword(String),
    /// Matches a number field equal to it.
    Number(f64),
    /// Matches a flag.
    Bool(bool),
}

/// A condition on a document's metadata. Keyword conditions match keyword fields and keyword-set
/// fields (a set matches if any member does); ranges match number fields; a document without the
/// field matches no condition on it (and therefore matches `Not` of one).
#[derive(Clone, PartialEq)]
pub enum Filter {
    /// The field equals the value.
    Eq {
        /// Metadata field name.
        field: String,
        /// The value.
        value: FilterValue,
    },
    /// The keyword field is one of the values.
    In {
        /// Metadata field name.
        field: String,
        /// Allowed keywords (at most [`limits::MAX_FILTER_LIST`]).
        values: Vec<String>,
    },
    /// The number field is within the inclusive bounds (a missing bound is open).
    Range {
        /// Metadata field name.
        field: String,
        /// Lower bound, inclusive.
        min: Option<f64>,
        /// Upper bound, inclusive.
        max: Option<f64>,
    },
    /// Every child matches (an empty list matches everything).
    And(Vec<Filter>),
    /// At least one child matches (an empty list matches nothing).
    Or(Vec<Filter>),
    /// The child does not match.
    Not(Box<Filter>),
}

impl fmt::Debug for FilterValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FilterValue(<redacted>)")
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Field names and values can be tenant data: only the shape is printed.
        match self {
            Filter::Eq { .. } => f.write_str("Eq(<redacted>)"),
            Filter::In { values, .. } => write!(f, "In(<redacted>, {} values)", values.len()),
            Filter::Range { .. } => f.write_str("Range(<redacted>)"),
            Filter::And(children) => f.debug_tuple("And").field(children).finish(),
            Filter::Or(children) => f.debug_tuple("Or").field(children).finish(),
            Filter::Not(child) => f.debug_tuple("Not").field(child).finish(),
        }
    }
}

impl Filter {
    /// Checks the filter against every limit before any work: depth at most
    /// [`limits::MAX_FILTER_DEPTH`], at most [`limits::MAX_FILTER_NODES`] nodes of any kind and
    /// [`limits::MAX_FILTER_CONDITIONS`] conditions among them, lists of at
    /// most [`limits::MAX_FILTER_LIST`], field names and keywords within their byte limits, finite
    /// numbers and non-inverted ranges. Iterative, so a hostile nesting cannot overflow the stack.
    pub fn validate(&self) -> Result<()> {
        self.validate_within(limits::MAX_FILTER_CONDITIONS)
    }

    /// As [`Filter::validate`], with at most `max_conditions` conditions (a tenant policy's tighter
    /// limit).
    pub(crate) fn validate_within(&self, max_conditions: usize) -> Result<()> {
        let mut conditions = 0usize;
        let mut nodes = 0usize;
        let mut stack = vec![(self, 1usize)];
        while let Some((node, depth)) = stack.pop() {
            // Every node costs a bitmap operation when the filter is evaluated, an empty `and` as
            // much as a condition: count them all, and stop at the first one over the limit.
            nodes += 1;
            if nodes > limits::MAX_FILTER_NODES {
                return Err(invalid("filter", format!("at most {} nodes", limits::MAX_FILTER_NODES)));
            }
            if depth > limits::MAX_FILTER_DEPTH {
                return Err(invalid("filter", format!("nested deeper than {}", limits::MAX_FILTER_DEPTH)));
            }
            let field = match node {
                Filter::Eq { field, .. } | Filter::In { field, .. } | Filter::Range { field, .. } => {
                    Some(field)
                }
                Filter::And(children) | Filter::Or(children) => {
                    if children.len() > limits::MAX_FILTER_LIST {
                        return Err(invalid(
                            "filter",
                            format!("an and/or holds at most {} children", limits::MAX_FILTER_LIST),
                        ));
                    }
                    stack.extend(children.iter().map(|c| (c, depth + 1)));
                    None
                }
                Filter::Not(child) => {
                    stack.push((child, depth + 1));
                    None
                }
            };
            let Some(field) = field else { continue };
            conditions += 1;
            if conditions > max_conditions {
                return Err(invalid("filter", format!("at most {max_conditions} conditions")));
            }
            if field.is_empty() || field.len() > limits::MAX_METADATA_KEY_BYTES {
                return Err(invalid(
                    "filter.field",
                    format!("must be 1 to {} bytes", limits::MAX_METADATA_KEY_BYTES),
                ));
            }
            let keyword = |value: &String| -> Result<()> {
                if value.len() > limits::MAX_FILTER_VALUE_BYTES {
                    return Err(invalid(
                        "filter.value",
                        format!("at most {} bytes", limits::MAX_FILTER_VALUE_BYTES),
                    ));
                }
                Ok(())
            };
            match node {
                Filter::Eq { value: FilterValue::Keyword(k), .. } => keyword(k)?,
                Filter::Eq { value: FilterValue::Number(n), .. } if !n.is_finite() => {
                    return Err(invalid("filter.value", "must be a finite number"));
                }
                Filter::In { values, .. } => {
                    if values.len() > limits::MAX_FILTER_LIST {
                        return Err(invalid(
                            "filter.values",
                            format!("at most {} values", limits::MAX_FILTER_LIST),
                        ));
                    }
                    values.iter().try_for_each(keyword)?;
                }
                Filter::Range { min, max, .. } => {
                    if min.is_some_and(|x| !x.is_finite()) || max.is_some_and(|x| !x.is_finite()) {
                        return Err(invalid("filter.range", "bounds must be finite numbers"));
                    }
                    if let (Some(lo), Some(hi)) = (min, max)
                        && lo > hi
                    {
                        return Err(invalid("filter.range", "min is greater than max"));
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Appends a length-prefixed string (so that concatenations cannot collide).
fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

impl Principal {
    /// An unambiguous encoding of the principal's permissions (user, then sorted groups): equal
    /// encodings mean equal rights. Used in result-cache keys.
    pub(crate) fn canonical(&self, out: &mut Vec<u8>) {
        put_str(out, &self.user);
        out.extend_from_slice(&(self.groups.len() as u32).to_le_bytes());
        for group in &self.groups {
            put_str(out, group);
        }
    }
}

impl Filter {
    /// An unambiguous encoding of the filter (prefix notation with tags and lengths).
    pub(crate) fn canonical(&self, out: &mut Vec<u8>) {
        match self {
            Filter::Eq { field, value } => {
                out.push(1);
                put_str(out, field);
                match value {
                    FilterValue::Keyword(k) => {
                        out.push(1);
                        put_str(out, k);
                    }
                    FilterValue::Number(n) => {
                        out.push(2);
                        out.extend_from_slice(&n.to_bits().to_le_bytes());
                    }
                    FilterValue::Bool(b) => out.extend_from_slice(&[3, u8::from(*b)]),
                }
            }
            Filter::In { field, values } => {
                out.push(2);
                put_str(out, field);
                out.extend_from_slice(&(values.len() as u32).to_le_bytes());
                values.iter().for_each(|v| put_str(out, v));
            }
            Filter::Range { field, min, max } => {
                out.push(3);
                put_str(out, field);
                for bound in [min, max] {
                    match bound {
                        Some(x) => {
                            out.push(1);
                            out.extend_from_slice(&x.to_bits().to_le_bytes());
                        }
                        None => out.push(0),
                    }
                }
            }
            Filter::And(children) | Filter::Or(children) => {
                out.push(if matches!(self, Filter::And(_)) { 4 } else { 5 });
                out.extend_from_slice(&(children.len() as u32).to_le_bytes());
                children.iter().for_each(|c| c.canonical(out));
            }
            Filter::Not(child) => {
                out.push(6);
                child.canonical(out);
            }
        }
    }
}
