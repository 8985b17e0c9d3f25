//! The points of `bulkhead client upsert --file`: read one at a time from a JSON-lines file (one
//! point an object per line, with metadata, source URI and ACL) or an fvecs file (vectors only, ids
//! made from their record numbers), each checked against the collection's dimension before it is
//! sent. Every refusal names the line or record and says what to check; none echoes a value of the
//! file (it may be tenant data that ends up in a shared log).

use anyhow::{Context, Result, bail};
use bulkhead_query::{DocId, limits};
use bulkhead_server::proto as pb;
use serde_json::Value;
use std::collections::HashMap;
use std::io::{BufRead, Read};
use std::path::Path;

/// The two file formats `--file` reads.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// One JSON object a line: `{"id": "a", "vector": [1, 0], "text": "...", "metadata": {...},
    /// "source_uri": "...", "acl": {"users": [...], "groups": [...]}}`.
    Jsonl,
    /// Little-endian records of a 4-byte dimension and that many 4-byte floats (the ANN datasets'
    /// format); the ids are `--id-prefix` and the record's number from 0.
    Fvecs,
}

impl Format {
    /// The format `--format` names, else the one the file's name suggests (`.fvecs`, else JSON lines).
    pub(crate) fn of(path: &Path, given: Option<Format>) -> Format {
        given.unwrap_or_else(|| match path.extension().and_then(|e| e.to_str()) {
            Some(ext) if ext.eq_ignore_ascii_case("fvecs") => Format::Fvecs,
            _ => Format::Jsonl,
        })
    }
}

/// A reader that counts the bytes read through it (the progress bar's position).
pub(crate) struct Counting<R> {
    inner: R,
    pub(crate) read: u64,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: std::io::BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        self.read += amt as u64;
        self.inner.consume(amt);
    }
}

/// The points of one file, in order, each with where it is in the file.
pub(crate) struct Points<R> {
    input: Counting<R>,
    format: Format,
    dimension: usize,
    id_prefix: String,
    /// The line (JSON lines, from 1) or record (fvecs, from 0) of the last point read.
    number: u64,
    line: String,
}

impl<R: BufRead> Points<R> {
    /// Reads `input` as `format`, each vector checked to have `dimension` values.
    pub(crate) fn new(input: R, format: Format, dimension: usize, id_prefix: &str) -> Points<R> {
        let number = match format {
            Format::Jsonl => 0,
            // The first record read is record 0.
            Format::Fvecs => u64::MAX,
        };
        let input = Counting { inner: input, read: 0 };
        Points { input, format, dimension, id_prefix: id_prefix.to_owned(), number, line: String::new() }
    }

    /// Bytes read so far.
    pub(crate) fn bytes_read(&self) -> u64 {
        self.input.read
    }

    /// Where the last point read is: `line N` or `record N`.
    pub(crate) fn place(&self, number: u64) -> String {
        match self.format {
            Format::Jsonl => format!("line {number}"),
            Format::Fvecs => format!("record {number}"),
        }
    }

    /// The next point and its line or record number, `None` at the end of the file.
    pub(crate) fn next_point(&mut self) -> Result<Option<(u64, pb::Point)>> {
        match self.format {
            Format::Jsonl => self.next_json(),
            Format::Fvecs => self.next_fvecs(),
        }
    }

    fn next_json(&mut self) -> Result<Option<(u64, pb::Point)>> {
        loop {
            self.line.clear();
            self.number += 1;
            let line = self.number;
            let read = self.input.read_line(&mut self.line).map_err(|e| match e.kind() {
                std::io::ErrorKind::InvalidData => {
                    anyhow::anyhow!("line {line} is not UTF-8 text: is this a JSON-lines file? (--format)")
                }
                _ => anyhow::Error::new(e).context(format!("reading line {line}")),
            })?;
            if read == 0 {
                return Ok(None);
            }
            if self.line.trim().is_empty() {
                continue;
            }
            let point = json_point(&self.line, self.dimension).with_context(|| format!("line {line}"))?;
            return Ok(Some((line, point)));
        }
    }

    fn next_fvecs(&mut self) -> Result<Option<(u64, pb::Point)>> {
        let record = self.number.wrapping_add(1);
        self.number = record;
        let at = self.input.read;
        let mut head = [0u8; 4];
        let got =
            read_full(&mut self.input, &mut head).with_context(|| format!("reading record {record}"))?;
        match got {
            0 => return Ok(None),
            4 => {}
            _ => bail!(
                "record {record} (byte {at}): the file ends inside the record's 4-byte dimension: the \
                 file is truncated or not fvecs"
            ),
        }
        let dim = i32::from_le_bytes(head);
        if usize::try_from(dim).ok() != Some(self.dimension) {
            bail!(
                "record {record} (byte {at}): dimension {dim}, but the collection's vectors have {}: check \
                 that this is the right file for this collection and that it is fvecs (not ivecs or bvecs)",
                self.dimension
            );
        }
        let mut body = vec![0u8; self.dimension * 4];
        let got =
            read_full(&mut self.input, &mut body).with_context(|| format!("reading record {record}"))?;
        if got < body.len() {
            bail!(
                "record {record} (byte {at}): the file ends after {got} of the record's {} vector bytes: \
                 the file is truncated",
                body.len()
            );
        }
        let vector: Vec<f32> =
            body.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        if let Some(i) = vector.iter().position(|v| !v.is_finite()) {
            bail!("record {record}: value {i} of the vector is not a finite number (NaN or infinity)");
        }
        let id = format!("{}{record}", self.id_prefix);
        DocId::new(id.as_str()).with_context(|| format!("record {record}: the id made with --id-prefix"))?;
        let point = pb::Point {
            id,
            vector,
            text: String::new(),
            metadata: HashMap::new(),
            source_uri: None,
            acl: None,
        };
        Ok(Some((record, point)))
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The fields a JSON line may have.
const FIELDS: &str = "id, vector, text, metadata, source_uri, acl";

/// One point from one JSON line.
fn json_point(line: &str, dimension: usize) -> Result<pb::Point> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        // serde_json's message names the column and what it expected, never the text.
        anyhow::anyhow!("not valid JSON ({}); each line holds one JSON object", e)
    })?;
    let Value::Object(object) = value else {
        bail!("not a JSON object; each line holds one object with the fields {FIELDS}");
    };
    let mut point = pb::Point::default();
    let mut has_vector = false;
    for (name, value) in object {
        match name.as_str() {
            "id" => point.id = string(&value, "id").context("quote a numeric id: \"id\": \"17\"")?,
            "vector" => {
                point.vector = vector(&value, dimension)?;
                has_vector = true;
            }
            "text" => point.text = string(&value, "text")?,
            "source_uri" => point.source_uri = Some(string(&value, "source_uri")?),
            "metadata" => point.metadata = metadata(&value)?,
            "acl" => point.acl = Some(acl(&value)?),
            // The field's name is the file's structure, not its data.
            _ => bail!("unknown field {name:?}: a point has the fields {FIELDS}"),
        }
    }
    if point.id.is_empty() {
        bail!("no \"id\": every point needs a string id (1 to {} bytes)", limits::MAX_DOC_ID_BYTES);
    }
    DocId::new(point.id.as_str()).context("the id")?;
    if !has_vector {
        bail!("no \"vector\": every point needs one, of {dimension} numbers");
    }
    if point.text.len() > limits::MAX_TEXT_BYTES {
        bail!(
            "the text has {} bytes, more than {} (MAX_TEXT_BYTES)",
            point.text.len(),
            limits::MAX_TEXT_BYTES
        );
    }
    Ok(point)
}

fn string(value: &Value, field: &str) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        _ => bail!("\"{field}\" must be a string, not {}", kind(value)),
    }
}

fn strings(value: &Value, field: &str) -> Result<Vec<String>> {
    let Value::Array(items) = value else {
        bail!("\"{field}\" must be a list of strings, not {}", kind(value))
    };
    items.iter().map(|item| string(item, field)).collect()
}

fn vector(value: &Value, dimension: usize) -> Result<Vec<f32>> {
    let Value::Array(items) = value else {
        bail!("\"vector\" must be a list of numbers, not {}", kind(value))
    };
    if items.len() != dimension {
        bail!(
            "the vector has {} values, but the collection's vectors have {dimension}: check the embedding \
             model and the collection",
            items.len()
        );
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let number =
                item.as_f64().with_context(|| format!("vector value {i} is {}, not a number", kind(item)))?;
            let number = number as f32;
            anyhow::ensure!(number.is_finite(), "vector value {i} does not fit a 32-bit float");
            Ok(number)
        })
        .collect()
}

/// Metadata: a string is a keyword, a list of strings keywords, a number a number, `true`/`false` a flag.
fn metadata(value: &Value) -> Result<HashMap<String, pb::MetaValue>> {
    use pb::meta_value::Kind;
    let Value::Object(fields) = value else { bail!("\"metadata\" must be an object, not {}", kind(value)) };
    fields
        .iter()
        .map(|(name, value)| {
            let kind = match value {
                Value::String(s) => Kind::Keyword(s.clone()),
                Value::Number(n) => Kind::Number(n.as_f64().context("a metadata number")?),
                Value::Bool(b) => Kind::Flag(*b),
                Value::Array(_) => Kind::Keywords(pb::KeywordList {
                    values: strings(value, "metadata").context("a metadata list holds strings only")?,
                }),
                _ => bail!(
                    "metadata field {name:?} is {}: use a string, a list of strings, a number or true/false",
                    kind(value)
                ),
            };
            Ok((name.clone(), pb::MetaValue { kind: Some(kind) }))
        })
        .collect()
}

fn acl(value: &Value) -> Result<pb::Acl> {
    let Value::Object(fields) = value else {
        bail!("\"acl\" must be an object {{\"users\": [...], \"groups\": [...]}}, not {}", kind(value))
    };
    let mut acl = pb::Acl::default();
    for (name, value) in fields {
        match name.as_str() {
            "users" => acl.users = strings(value, "acl.users")?,
            "groups" => acl.groups = strings(value, "acl.groups")?,
            _ => bail!("unknown ACL field {name:?}: an ACL has users and groups"),
        }
    }
    Ok(acl)
}

/// What kind of JSON value this is, for an error message (never the value itself).
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests;
