//! `bulkhead bench` end to end: the built binary on a small generated dataset with exact ground
//! truth, and every kind of bad input ending in a one-line error instead of a panic.

use std::path::Path;
use std::process::{Command, Output};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn random_rows(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n).map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()).collect()
}

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut bytes = Vec::new();
    for row in rows {
        bytes.extend_from_slice(&(row.len() as i32).to_le_bytes());
        row.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    std::fs::write(path, bytes).expect("write fvecs");
}

fn write_ivecs(path: &Path, rows: &[Vec<u32>]) {
    let mut bytes = Vec::new();
    for row in rows {
        bytes.extend_from_slice(&(row.len() as i32).to_le_bytes());
        row.iter().for_each(|&id| bytes.extend_from_slice(&(id as i32).to_le_bytes()));
    }
    std::fs::write(path, bytes).expect("write ivecs");
}

/// The exact `k` nearest base rows of each query by squared Euclidean distance.
fn exact_l2(base: &[Vec<f32>], queries: &[Vec<f32>], k: usize) -> Vec<Vec<u32>> {
    queries
        .iter()
        .map(|q| {
            let mut scored: Vec<(f32, u32)> = (0u32..)
                .zip(base)
                .map(|(id, row)| (row.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(), id))
                .collect();
            scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            scored.iter().take(k).map(|&(_, id)| id).collect()
        })
        .collect()
}

/// A dataset directory: 2,000 × 16 random base vectors, 100 queries, exact top-20.
fn dataset(dir: &Path) {
    let base = random_rows(2_000, 16, 1);
    let queries = random_rows(100, 16, 2);
    write_fvecs(&dir.join("base.fvecs"), &base);
    write_fvecs(&dir.join("query.fvecs"), &queries);
    write_ivecs(&dir.join("gt.ivecs"), &exact_l2(&base, &queries, 20));
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bulkhead")).arg("bench").args(args).output().expect("run bulkhead")
}

/// The recall column of the row for `ef` in the section whose title starts with `section`.
fn recall(report: &str, section: &str, ef: usize) -> f64 {
    let mut lines = report.lines().skip_while(|line| !line.starts_with(section)).skip(2);
    let row = lines
        .find(|line| line.split_whitespace().next() == Some(&ef.to_string()))
        .unwrap_or_else(|| panic!("no ef {ef} row under {section:?} in:\n{report}"));
    row.split_whitespace().nth(1).and_then(|r| r.parse().ok()).expect("recall column")
}

#[test]
fn bench_reports_recall_near_one_at_large_ef() {
    let dir = tempfile::tempdir().expect("tempdir");
    dataset(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let output = bench(&[
        "--dataset",
        path,
        "--metric",
        "l2",
        "--ef",
        "16,256",
        "--selectivity",
        "1,50",
        "--passes",
        "1",
        "--threads",
        "2",
    ]);
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}\n{report}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("isa:"), "{report}");
    assert!(report.contains("(2000 × 16)"), "{report}");
    assert!(report.contains("B/vector"), "{report}");
    let unfiltered = recall(&report, "unfiltered", 256);
    assert!(unfiltered >= 0.99, "unfiltered recall@10 at ef 256: {unfiltered}\n{report}");
    let one_percent = recall(&report, "filtered 1%", 256);
    assert_eq!(one_percent, 1.0, "a 1% allowed set is scanned exactly\n{report}");
    assert!(report.contains("ExactAllowed"), "{report}");
    let half = recall(&report, "filtered 50%", 256);
    assert!(half >= 0.99, "50% filtered recall@10 at ef 256: {half}\n{report}");
}

#[test]
fn bench_cosine_and_limit_compute_their_own_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    dataset(dir.path());
    let base = dir.path().join("base.fvecs");
    let queries = dir.path().join("query.fvecs");
    // No ground truth file: the exact scan provides it, after normalising the rows.
    let args = ["--metric", "cosine", "--limit", "1500", "--ef", "128", "--selectivity", "10"];
    let output = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .arg("bench")
        .arg("--base")
        .arg(&base)
        .arg("--queries")
        .arg(&queries)
        .args(args)
        .args(["--passes", "1"])
        .output()
        .expect("run bulkhead");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(report.contains("truth:    exact scan"), "{report}");
    assert!(report.contains("(1500 × 16)"), "{report}");
    assert!(recall(&report, "unfiltered", 128) >= 0.99, "{report}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = dir.path().join("good");
    std::fs::create_dir(&good).expect("mkdir");
    dataset(&good);
    let at = |name: &str| good.join(name).to_str().expect("utf-8").to_owned();
    let other = |name: &str| dir.path().join(name).to_str().expect("utf-8").to_owned();

    write_fvecs(&dir.path().join("q8.fvecs"), &random_rows(10, 8, 3));
    write_ivecs(&dir.path().join("gt5.ivecs"), &vec![vec![0, 1, 2, 3, 4]; 100]);
    std::fs::write(dir.path().join("empty.fvecs"), b"").expect("write");

    let (base, queries, gt) = (at("base.fvecs"), at("query.fvecs"), at("gt.ivecs"));
    let files = |b: &str, q: &str, g: &str| {
        ["--base", b, "--queries", q, "--gt", g].iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (files(&other("missing.fvecs"), &queries, &gt), "missing.fvecs"),
        (files(&base, &other("q8.fvecs"), &gt), "dimension mismatch"),
        (files(&base, &queries, &other("gt5.ivecs")), "5 neighbours per query; recall@10 needs at least 10"),
        (files(&other("empty.fvecs"), &queries, &gt), "holds no vectors"),
        (files(&base, &other("empty.fvecs"), &gt), "holds no vectors"),
        (vec!["--dataset".into(), good.to_str().expect("utf-8").into(), "--ef".into(), "0".into()], "--ef 0"),
        (
            vec!["--dataset".into(), good.to_str().expect("utf-8").into(), "--ef".into(), "5000".into()],
            "--ef 5000",
        ),
        (
            vec!["--dataset".into(), good.to_str().expect("utf-8").into(), "-M".into(), "3".into()],
            "m must be",
        ),
        (
            vec!["--dataset".into(), good.to_str().expect("utf-8").into(), "-M".into(), "300".into()],
            "m must be",
        ),
        (
            vec![
                "--dataset".into(),
                good.to_str().expect("utf-8").into(),
                "--ef-construction".into(),
                "9999".into(),
            ],
            "ef_construction",
        ),
        (
            vec![
                "--dataset".into(),
                good.to_str().expect("utf-8").into(),
                "--selectivity".into(),
                "0".into(),
            ],
            "selectivity",
        ),
    ];
    for (args, expected) in &cases {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        if !all.contains(&"--metric") {
            all.extend(["--metric", "l2"]);
        }
        let output = bench(&all);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: not one line: {stderr}");
        assert!(stderr.starts_with("error: ") && stderr.contains(expected), "{args:?}: {stderr}");
    }

    // Random vectors are not unit length: dot would rank them wrongly, so it is refused.
    let output = bench(&["--dataset", good.to_str().expect("utf-8"), "--metric", "dot"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("--metric dot needs unit vectors"), "{stderr}");
}

#[test]
fn bench_json_puts_its_numbers_on_stdout() {
    let dir = tempfile::tempdir().expect("tempdir");
    dataset(dir.path());
    let path = dir.path().to_str().expect("utf-8 path");
    let args = ["--dataset", path, "--metric", "l2", "--ef", "64", "--selectivity", "50", "--passes", "1"];
    let output = Command::new(env!("CARGO_BIN_EXE_bulkhead"))
        .args(["--json", "bench"])
        .args(args)
        .output()
        .expect("run bulkhead");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unfiltered"), "the report on stderr");
    let summary: serde_json::Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    assert_eq!((summary["vectors"].as_u64(), summary["dimension"].as_u64()), (Some(2000), Some(16)));
    let rows = summary["results"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{summary}");
    assert!(rows[0]["selectivity_percent"].is_null() && rows[1]["selectivity_percent"] == 50.0);
    assert!(rows[0]["recall"].as_f64().is_some_and(|r| r > 0.5), "{summary}");
}
