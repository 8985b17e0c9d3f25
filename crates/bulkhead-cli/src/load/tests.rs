//! The file formats of `client upsert --file`: what is read, and each refusal naming its place.

use super::{Format, Points};
use bulkhead_server::proto as pb;

fn all(bytes: &[u8], format: Format, dimension: usize) -> anyhow::Result<Vec<(u64, pb::Point)>> {
    let mut points = Points::new(bytes, format, dimension, "v");
    let mut out = Vec::new();
    while let Some(point) = points.next_point()? {
        out.push(point);
    }
    assert_eq!(points.bytes_read(), bytes.len() as u64);
    Ok(out)
}

fn error(bytes: &[u8], format: Format, dimension: usize) -> String {
    format!("{:#}", all(bytes, format, dimension).expect_err("refused"))
}

#[test]
fn json_lines_carry_every_field() {
    let file = br#"{"id": "a", "vector": [1, 0.5], "text": "hello", "source_uri": "https://x/a",
"metadata": {"lang": "en", "year": 2024, "draft": false, "tags": ["x", "y"]},
"acl": {"users": ["alice"], "groups": ["eng"]}}

{"id": "b", "vector": [0, 1]}
"#;
    // The first object spans three lines: JSON lines means one object a line.
    assert!(error(file, Format::Jsonl, 2).starts_with("line 1: not valid JSON"));
    let file = file.split(|&b| b == b'\n').take(3).collect::<Vec<_>>().join(&b' ');
    let file = [file.as_slice(), b"\n\n{\"id\": \"b\", \"vector\": [0, 1]}\n"].concat();
    let points = all(&file, Format::Jsonl, 2).expect("read");
    assert_eq!(points.iter().map(|(line, _)| *line).collect::<Vec<_>>(), [1, 3], "blank lines count");
    let (_, a) = &points[0];
    assert_eq!((a.id.as_str(), a.vector.as_slice(), a.text.as_str()), ("a", &[1.0, 0.5][..], "hello"));
    assert_eq!(a.source_uri.as_deref(), Some("https://x/a"));
    let acl = a.acl.as_ref().expect("acl");
    assert_eq!(
        (acl.users.as_slice(), acl.groups.as_slice()),
        (&["alice".to_owned()][..], &["eng".to_owned()][..])
    );
    use pb::meta_value::Kind;
    let kind = |name: &str| a.metadata[name].kind.clone().expect("kind");
    assert_eq!(kind("lang"), Kind::Keyword("en".into()));
    assert_eq!(kind("year"), Kind::Number(2024.0));
    assert_eq!(kind("draft"), Kind::Flag(false));
    assert_eq!(kind("tags"), Kind::Keywords(pb::KeywordList { values: vec!["x".into(), "y".into()] }));
    assert!(points[1].1.acl.is_none() && points[1].1.metadata.is_empty());
}

#[test]
fn bad_json_lines_are_refused_by_line_with_what_to_check() {
    let ok = "{\"id\": \"a\", \"vector\": [1, 0]}\n";
    for (line, expected) in [
        (
            "{\"id\": \"b\", \"vector\": [1, 0, 0]}",
            "line 2: the vector has 3 values, but the collection's vectors have 2",
        ),
        ("{\"id\": \"b\", \"vector\": [1, \"x\"]}", "line 2: vector value 1 is a string, not a number"),
        ("{\"id\": \"b\", \"vector\": [1, 1e39]}", "line 2: vector value 1 does not fit a 32-bit float"),
        ("{\"id\": 7, \"vector\": [1, 0]}", "line 2: quote a numeric id"),
        ("{\"vector\": [1, 0]}", "line 2: no \"id\""),
        ("{\"id\": \"b\"}", "line 2: no \"vector\""),
        ("{\"id\": \"b\", \"vectors\": [1, 0]}", "line 2: unknown field \"vectors\": a point has the fields"),
        (
            "{\"id\": \"b\", \"vector\": [1, 0], \"metadata\": {\"m\": null}}",
            "line 2: metadata field \"m\" is null",
        ),
        ("{\"id\": \"b\", \"vector\": [1, 0], \"acl\": {\"roles\": []}}", "line 2: unknown ACL field"),
        ("[1, 0]", "line 2: not a JSON object"),
        ("{\"id\": \"b\", \"vector\": [1, 0]", "line 2: not valid JSON"),
    ] {
        let file = format!("{ok}{line}\n");
        let message = error(file.as_bytes(), Format::Jsonl, 2);
        assert!(message.starts_with(expected), "{message}");
        assert!(!message.contains("1e39"), "no value of the file is echoed: {message}");
    }
    assert!(error(b"\xff\xfe\n", Format::Jsonl, 2).contains("line 1 is not UTF-8"));
    let long = format!("{{\"id\": \"{}\", \"vector\": [1, 0]}}\n", "x".repeat(300));
    assert!(error(long.as_bytes(), Format::Jsonl, 2).starts_with("line 1: the id"));
}

fn fvecs(records: &[&[f32]]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&(r.len() as i32).to_le_bytes());
        for v in *r {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

#[test]
fn fvecs_records_become_numbered_points() {
    let file = fvecs(&[&[1.0, 2.0], &[3.0, 4.0], &[5.0, 6.0]]);
    let points = all(&file, Format::Fvecs, 2).expect("read");
    let ids: Vec<_> = points.iter().map(|(n, p)| (*n, p.id.clone())).collect();
    assert_eq!(ids, [(0, "v0".to_owned()), (1, "v1".to_owned()), (2, "v2".to_owned())]);
    assert_eq!(points[2].1.vector, [5.0, 6.0]);
    assert!(all(&[], Format::Fvecs, 2).expect("empty").is_empty());
}

#[test]
fn bad_fvecs_are_refused_by_record() {
    let good = fvecs(&[&[1.0, 2.0]]);
    let wrong = [good.clone(), fvecs(&[&[1.0, 2.0, 3.0]])].concat();
    let message = error(&wrong, Format::Fvecs, 2);
    assert!(
        message.starts_with("record 1 (byte 12): dimension 3, but the collection's vectors have 2"),
        "{message}"
    );
    let cut = &good[..10];
    assert!(
        error(cut, Format::Fvecs, 2)
            .starts_with("record 0 (byte 0): the file ends after 6 of the record's 8")
    );
    let cut = [good.as_slice(), &[2, 0]].concat();
    assert!(
        error(&cut, Format::Fvecs, 2)
            .starts_with("record 1 (byte 12): the file ends inside the record's 4-byte")
    );
    let nan = fvecs(&[&[1.0, f32::NAN]]);
    assert!(
        error(&nan, Format::Fvecs, 2).starts_with("record 0: value 1 of the vector is not a finite number")
    );
}

#[test]
fn the_format_follows_the_file_name_unless_given() {
    use std::path::Path;
    assert!(Format::of(Path::new("base.fvecs"), None) == Format::Fvecs);
    assert!(Format::of(Path::new("points.jsonl"), None) == Format::Jsonl);
    assert!(Format::of(Path::new("-"), None) == Format::Jsonl);
    assert!(Format::of(Path::new("points.bin"), Some(Format::Fvecs)) == Format::Fvecs);
}
