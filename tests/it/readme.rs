//! The README's library program is `crates/bulkhead-query/examples/library.rs`, shown whole: it
//! must stay the same text, and it must run.

#[path = "../../crates/bulkhead-query/examples/library.rs"]
mod library;

#[test]
fn the_readme_shows_the_library_example_whole() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../../crates/bulkhead-query/examples/library.rs");
    assert!(
        readme.contains(&format!("```rust\n{example}```\n")),
        "README.md's library program differs from crates/bulkhead-query/examples/library.rs"
    );
}

#[test]
fn the_library_example_runs() {
    library::main().expect("the library example runs");
}
