//! The gRPC codec of every `bulkhead.v1` client and server (`build.rs` names it): prost, with one
//! step before a request is decoded. The request's wire bytes are walked against its schema (the
//! descriptor set compiled in `build.rs`) and its elements counted; a request over a documented
//! per-field limit or over [`limits::MAX_REQUEST_ELEMENTS`] is refused before prost allocates
//! anything, and the elements of an accepted one are reserved from the server's request memory
//! budget (`budget.rs`) before it is decoded.
//!
//! The bound this gives: prost allocates only for the elements counted here (a nested message, an
//! entry of a repeated field or map) and for the bytes of strings and packed numbers, which are
//! copied at their length (a packed `Vec` grows by doubling, so at most twice the wire bytes). So
//! a decoded request takes at most `2 × wire bytes + elements × ELEMENT_RESERVATION_BYTES`, which
//! is what the server reserves for it ([`limits::wire_reservation`] on top of the wire bytes, then
//! [`limits::ELEMENT_RESERVATION_BYTES`] per element). Singular fields repeated on the wire are
//! merged by prost into one value, so they add nothing; unknown fields are skipped without an
//! allocation.
//!
//! Only the input types of the services' methods are walked: the clients decode responses from a
//! server they chose to trust, and an audit page may legitimately hold a million document hashes.

use crate::limits::{self, ELEMENT_RESERVATION_BYTES, MAX_REQUEST_ELEMENTS};
use bulkhead_query::limits as lib;
use bytes::{Buf, Bytes};
use prost::{Message, Name};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::OnceLock;
use tonic::Status;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};

/// Deepest nesting of messages in a request (the root is depth 1). A filter at its depth limit
/// (`MAX_FILTER_DEPTH`, 8) inside a batch query is 18 deep; prost itself stops at 100.
const MAX_NESTING: usize = 32;

/// A documented limit on the entries of one or more repeated fields of one message instance,
/// checked as the entries are counted, with the refusal the library or the service would give
/// once the message was decoded (`{max}` stands for the limit).
struct FieldLimit {
    message: &'static str,
    fields: &'static [&'static str],
    max: usize,
    refusal: &'static str,
}

/// The per-field limits of `docs/LIMITS.md` that the wire walk enforces. The library and the
/// services check them again on the decoded request (and check what the walk cannot, like byte
/// lengths); here they only stop a request before its elements are allocated.
const FIELD_LIMITS: &[FieldLimit] = &[
    FieldLimit {
        message: "bulkhead.v1.UpsertRequest",
        fields: &["points"],
        max: lib::MAX_BATCH_POINTS,
        refusal: "invalid points: at most {max} points per batch",
    },
    FieldLimit {
        message: "bulkhead.v1.DeleteRequest",
        fields: &["ids"],
        max: lib::MAX_BATCH_POINTS,
        refusal: "invalid ids: at most {max} ids per batch",
    },
    FieldLimit {
        message: "bulkhead.v1.Point",
        fields: &["metadata"],
        max: lib::MAX_METADATA_FIELDS,
        refusal: "invalid metadata: has more than {max} fields",
    },
    // Each keyword counts at least one byte against the point's metadata bytes.
    FieldLimit {
        message: "bulkhead.v1.KeywordList",
        fields: &["values"],
        max: lib::MAX_METADATA_BYTES,
        refusal: "invalid metadata: exceeds {max} bytes",
    },
    FieldLimit {
        message: "bulkhead.v1.Acl",
        fields: &["users", "groups"],
        max: lib::MAX_ACL_ENTRIES,
        refusal: "invalid acl: names more than {max} users and groups",
    },
    FieldLimit {
        message: "bulkhead.v1.SearchBatchRequest",
        fields: &["queries"],
        max: limits::MAX_SEARCH_BATCH,
        refusal: "invalid queries: must be 1 to {max} per batch",
    },
    FieldLimit {
        message: "bulkhead.v1.FilterList",
        fields: &["filters"],
        max: lib::MAX_FILTER_LIST,
        refusal: "invalid filter: an and/or holds at most {max} children",
    },
    FieldLimit {
        message: "bulkhead.v1.OneOf",
        fields: &["values"],
        max: lib::MAX_FILTER_LIST,
        refusal: "invalid filter: at most {max} values",
    },
    FieldLimit {
        message: "bulkhead.v1.Principal",
        fields: &["groups"],
        max: lib::MAX_PRINCIPAL_GROUPS,
        refusal: "invalid principal.groups: at most {max} groups",
    },
    FieldLimit {
        message: "bulkhead.v1.UserBinding",
        fields: &["groups"],
        max: lib::MAX_PRINCIPAL_GROUPS,
        refusal: "invalid binding: at most {max} groups",
    },
    // The storage crate's policy limits (64 denied operations, `MAX_POLICY_PREFIXES` prefixes).
    FieldLimit {
        message: "bulkhead.v1.TenantPolicy",
        fields: &["denied"],
        max: 64,
        refusal: "invalid policy: at most {max} denied operations",
    },
    FieldLimit {
        message: "bulkhead.v1.TenantPolicy",
        fields: &["source_uri_prefixes"],
        max: 64,
        refusal: "invalid policy: at most {max} source URI prefixes",
    },
];

/// The one recursive message and how deep it may nest (counting its own instances on the path).
const FILTER: (&str, usize, &str) =
    ("bulkhead.v1.Filter", lib::MAX_FILTER_DEPTH, "invalid filter: nested deeper than {max}");

/// Most limits one message carries (`TenantPolicy` has two).
const MAX_LIMITS_PER_MESSAGE: usize = 4;

/// What the walk needs to know of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A nested message (or a map entry), by its index in [`Schema::messages`].
    Message(usize),
    /// A string or bytes.
    Bytes,
    /// An integer, bool or enum (wire type 0).
    Varint,
    /// A float or fixed32 (wire type 5).
    Fixed32,
    /// A double or fixed64 (wire type 1).
    Fixed64,
}

#[derive(Debug)]
struct Field {
    number: u32,
    kind: Kind,
    repeated: bool,
    /// The index of its limit in [`MessageSchema::limits`].
    limit: Option<usize>,
}

#[derive(Debug, Default)]
struct MessageSchema {
    fields: Vec<Field>,
    limits: Vec<(usize, &'static str)>,
    /// Whether it is the recursive filter node.
    filter: bool,
    /// Whether it is the input type of a method.
    request: bool,
}

/// Every message of `bulkhead.v1`, read from the compiled descriptor set.
#[derive(Debug)]
struct Schema {
    messages: Vec<MessageSchema>,
    by_name: HashMap<String, usize>,
}

impl Schema {
    fn get() -> Result<&'static Schema, Status> {
        static SCHEMA: OnceLock<Result<Schema, String>> = OnceLock::new();
        SCHEMA.get_or_init(|| Schema::build(crate::proto::FILE_DESCRIPTOR_SET)).as_ref().map_err(|e| {
            tracing::error!(error = %e, "the request schema could not be built");
            Status::internal("internal error (see the server log)")
        })
    }

    fn build(encoded: &[u8]) -> Result<Schema, String> {
        use prost_types::field_descriptor_proto::{Label, Type};
        let set = prost_types::FileDescriptorSet::decode(encoded).map_err(|e| e.to_string())?;
        // Every message, nested ones (map entries) included, by its full name without the leading dot.
        let mut found: Vec<(String, &prost_types::DescriptorProto)> = Vec::new();
        fn collect<'a>(
            prefix: &str,
            messages: &'a [prost_types::DescriptorProto],
            out: &mut Vec<(String, &'a prost_types::DescriptorProto)>,
        ) {
            for message in messages {
                let name = format!("{prefix}.{}", message.name());
                collect(&name, &message.nested_type, out);
                out.push((name, message));
            }
        }
        for file in &set.file {
            collect(file.package(), &file.message_type, &mut found);
        }
        let by_name: HashMap<String, usize> =
            found.iter().enumerate().map(|(i, (name, _))| (name.clone(), i)).collect();
        let mut messages = Vec::with_capacity(found.len());
        for (name, descriptor) in &found {
            let mut schema = MessageSchema { filter: name == FILTER.0, ..MessageSchema::default() };
            for field in &descriptor.field {
                let kind = match field.r#type() {
                    Type::Message => {
                        let target = field.type_name().trim_start_matches('.');
                        Kind::Message(
                            *by_name.get(target).ok_or_else(|| format!("{name}: unknown type {target}"))?,
                        )
                    }
                    Type::String | Type::Bytes => Kind::Bytes,
                    Type::Float | Type::Fixed32 | Type::Sfixed32 => Kind::Fixed32,
                    Type::Double | Type::Fixed64 | Type::Sfixed64 => Kind::Fixed64,
                    Type::Group => return Err(format!("{name}: groups are not supported")),
                    _ => Kind::Varint,
                };
                schema.fields.push(Field {
                    number: field.number() as u32,
                    kind,
                    repeated: field.label() == Label::Repeated,
                    limit: None,
                });
            }
            for limit in FIELD_LIMITS.iter().filter(|l| l.message == name) {
                let index = schema.limits.len();
                if index == MAX_LIMITS_PER_MESSAGE {
                    return Err(format!("{name}: too many limits"));
                }
                schema.limits.push((limit.max, limit.refusal));
                for field_name in limit.fields {
                    let position = descriptor
                        .field
                        .iter()
                        .position(|f| f.name() == *field_name)
                        .ok_or_else(|| format!("{name} has no field {field_name}"))?;
                    if !schema.fields[position].repeated {
                        return Err(format!("{name}.{field_name} is not repeated"));
                    }
                    schema.fields[position].limit = Some(index);
                }
            }
            messages.push(schema);
        }
        for limit in FIELD_LIMITS {
            if !by_name.contains_key(limit.message) {
                return Err(format!("a limit names the unknown message {}", limit.message));
            }
        }
        if !by_name.contains_key(FILTER.0) {
            return Err(format!("no message {}", FILTER.0));
        }
        for file in &set.file {
            for method in file.service.iter().flat_map(|s| &s.method) {
                let input = method.input_type().trim_start_matches('.');
                let index = *by_name.get(input).ok_or_else(|| format!("unknown input type {input}"))?;
                messages[index].request = true;
            }
        }
        Ok(Schema { messages, by_name })
    }

    /// The index of a request type, or `None` for any other message.
    fn request(&self, package: &str, name: &str) -> Option<usize> {
        let index = *self.by_name.get(&format!("{package}.{name}"))?;
        self.messages[index].request.then_some(index)
    }

    /// Walks one request's wire bytes and returns how many elements it holds.
    fn count(&self, root: usize, bytes: &[u8]) -> Result<usize, Status> {
        let mut walk = Walk { schema: self, elements: 0 };
        walk.message(root, bytes, 1, 0)?;
        Ok(walk.elements)
    }
}

struct Walk<'s> {
    schema: &'s Schema,
    elements: usize,
}

fn malformed(what: &str) -> Status {
    Status::invalid_argument(format!("invalid request: not a well-formed protobuf message ({what})"))
}

fn over(refusal: &str, max: usize) -> Status {
    Status::invalid_argument(refusal.replace("{max}", &max.to_string()))
}

/// Reads a varint (at most ten bytes) from the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Result<u64, Status> {
    let mut value = 0u64;
    for shift in 0..10 {
        let (&byte, rest) = bytes.split_first().ok_or_else(|| malformed("truncated varint"))?;
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(malformed("varint longer than ten bytes"))
}

/// Takes `len` bytes from the front of `bytes`.
fn take<'b>(bytes: &mut &'b [u8], len: u64) -> Result<&'b [u8], Status> {
    let len = usize::try_from(len)
        .ok()
        .filter(|&n| n <= bytes.len())
        .ok_or_else(|| malformed("truncated field"))?;
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Ok(head)
}

impl Walk<'_> {
    fn add(&mut self, n: usize) -> Result<(), Status> {
        self.elements += n;
        if self.elements > MAX_REQUEST_ELEMENTS {
            return Err(Status::invalid_argument(format!(
                "invalid request: more than {MAX_REQUEST_ELEMENTS} elements (points, ids, map entries, list \
                 values, nested messages) in one message (MAX_REQUEST_ELEMENTS, docs/LIMITS.md); split it"
            )));
        }
        Ok(())
    }

    /// Walks one instance of message `index`, `nesting` deep, under `filters` filter nodes.
    fn message(
        &mut self,
        index: usize,
        mut bytes: &[u8],
        nesting: usize,
        filters: usize,
    ) -> Result<(), Status> {
        if nesting > MAX_NESTING {
            return Err(Status::invalid_argument(format!(
                "invalid request: messages nested deeper than {MAX_NESTING}"
            )));
        }
        let schema = &self.schema.messages[index];
        let filters = filters + usize::from(schema.filter);
        if filters > FILTER.1 {
            return Err(over(FILTER.2, FILTER.1));
        }
        let mut counts = [0usize; MAX_LIMITS_PER_MESSAGE];
        while !bytes.is_empty() {
            let key = varint(&mut bytes)?;
            let number = u32::try_from(key >> 3).map_err(|_| malformed("field number out of range"))?;
            if number == 0 {
                return Err(malformed("field number 0"));
            }
            let field = schema.fields.iter().find(|f| f.number == number);
            let wire = key & 7;
            let entries = match wire {
                0 => {
                    varint(&mut bytes)?;
                    match field {
                        Some(f) if f.kind != Kind::Varint => return Err(malformed("unexpected wire type")),
                        Some(f) if f.repeated => 1,
                        _ => 0,
                    }
                }
                1 | 5 => {
                    let expected = if wire == 1 { Kind::Fixed64 } else { Kind::Fixed32 };
                    take(&mut bytes, if wire == 1 { 8 } else { 4 })?;
                    if field.is_some_and(|f| f.kind != expected) {
                        return Err(malformed("unexpected wire type"));
                    }
                    // A float decodes into four bytes of a `Vec`: no more than it took on the wire.
                    0
                }
                2 => {
                    let len = varint(&mut bytes)?;
                    let body = take(&mut bytes, len)?;
                    match field {
                        // Unknown fields are skipped by prost without an allocation.
                        None => 0,
                        Some(f) => match f.kind {
                            Kind::Message(sub) => {
                                self.add(1)?;
                                self.count_limited(schema, f, 1, &mut counts)?;
                                self.message(sub, body, nesting + 1, filters)?;
                                0
                            }
                            Kind::Bytes if f.repeated => 1,
                            Kind::Bytes => 0,
                            // Packed integers: one element per varint (each decodes into eight bytes).
                            Kind::Varint if f.repeated => body.iter().filter(|&&b| b < 0x80).count(),
                            // Packed floats and doubles decode into no more bytes than they take.
                            Kind::Fixed32 | Kind::Fixed64 if f.repeated => 0,
                            _ => return Err(malformed("unexpected wire type")),
                        },
                    }
                }
                _ => return Err(malformed("groups are not accepted")),
            };
            if entries > 0 {
                self.add(entries)?;
                if let Some(f) = field {
                    self.count_limited(schema, f, entries, &mut counts)?;
                }
            }
        }
        Ok(())
    }

    /// Counts `n` entries of a field of this message instance against the field's limit, if any.
    fn count_limited(
        &self,
        schema: &MessageSchema,
        field: &Field,
        n: usize,
        counts: &mut [usize; MAX_LIMITS_PER_MESSAGE],
    ) -> Result<(), Status> {
        if let Some(index) = field.limit {
            counts[index] += n;
            let (max, refusal) = schema.limits[index];
            if counts[index] > max {
                return Err(over(refusal, max));
            }
        }
        Ok(())
    }
}

/// The codec `build.rs` puts in every generated client and server: prost's encoding, and a
/// decoding that walks a request before prost sees it.
#[derive(Debug)]
pub struct BoundedCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for BoundedCodec<T, U> {
    fn default() -> Self {
        BoundedCodec { _types: PhantomData }
    }
}

impl<T, U> Codec for BoundedCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = BoundedDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        BoundedDecoder { _type: PhantomData }
    }
}

/// Decodes `U`; if `U` is a request, only after [`Schema::count`] accepted it and its elements were
/// reserved from the call's budget.
#[derive(Debug)]
pub struct BoundedDecoder<U> {
    _type: PhantomData<U>,
}

impl<U: Message + Name + Default> Decoder for BoundedDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        // The message is contiguous in tonic's buffer: this takes it without a copy.
        let bytes: Bytes = buf.copy_to_bytes(buf.remaining());
        let schema = Schema::get()?;
        if let Some(root) = schema.request(U::PACKAGE, U::NAME) {
            let elements = schema.count(root, &bytes)?;
            crate::budget::reserve_elements(elements.saturating_mul(ELEMENT_RESERVATION_BYTES))?;
        }
        U::decode(bytes).map(Some).map_err(|e| {
            Status::invalid_argument(format!("invalid request: not a well-formed protobuf message ({e})"))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Counts the elements of an encoded request of type `U` as the server would, or refuses it as the
/// server would (for tests and benchmarks; the server calls this inside its codec).
pub fn count_request_elements<U: Name>(bytes: &[u8]) -> Result<usize, Status> {
    let schema = Schema::get()?;
    let root = schema
        .request(U::PACKAGE, U::NAME)
        .ok_or_else(|| Status::invalid_argument("not a request type of bulkhead.v1"))?;
    schema.count(root, bytes)
}
