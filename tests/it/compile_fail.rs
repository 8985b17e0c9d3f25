//! Compile-fail tests: the rules the types enforce, each shown by a program in `ui/` that must not
//! compile, with the compiler's message committed beside it.

use std::process::Command;

/// trybuild type-checks the cases in a project of its own, whose dependencies include RocksDB; its
/// build script would compile RocksDB's C++ once more (about 20 minutes on two cores). A type check
/// never links, so the build script can be pointed at an empty "prebuilt library" directory instead.
/// The variables must reach trybuild's child cargo, so the cases run in a child of this test process
/// started with them set.
#[test]
fn type_rules_hold() {
    let empty = tempfile::tempdir().expect("tempdir");
    let output = Command::new(std::env::current_exe().expect("exe"))
        .args(["--ignored", "--exact", "compile_fail::trybuild_child", "--nocapture", "--test-threads=1"])
        .env("ROCKSDB_LIB_DIR", empty.path())
        .env("ROCKSDB_STATIC", "1")
        .output()
        .expect("run trybuild child");
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "compile-fail cases failed:\n{text}");
    assert!(text.contains("test result: ok. 1 passed"), "the child ran the cases:\n{text}");
}

#[test]
#[ignore = "run as a child process by type_rules_hold"]
fn trybuild_child() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("ui/*.rs");
}
