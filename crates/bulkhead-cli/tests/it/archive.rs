//! `bulkhead admin export-tenant` and `import-tenant` against a running `bulkhead serve`: an export
//! to a new file (mode 0600, never over an existing file), an import of it under a new name in the
//! shared tier (`--as`, `--tier`, `--json`), and the copy's search answers the original's.

use crate::serve::{bulkhead, ok, start_serve};
use std::os::unix::fs::PermissionsExt;

#[test]
fn export_then_import_as_a_new_tenant_through_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_serve(dir.path(), &["--listen", "127.0.0.1:0"], &[]).expect("serving");
    let env = [("BULKHEAD_SERVER", server.address.as_str())];
    let run = |args: &[&str]| bulkhead(dir.path(), args, &env);
    ok(run(&["admin", "tenant", "create", "acme"]));
    let admin_key = ok(run(&["admin", "key", "issue", "acme", "--role", "tenant-admin"])).trim().to_owned();
    let as_admin = [env[0], ("BULKHEAD_API_KEY", admin_key.as_str())];
    ok(bulkhead(dir.path(), &["client", "create-collection", "docs", "--dim", "3"], &as_admin));
    for (id, vector, text) in [("a", "1,0,0", "hello"), ("b", "0,1,0", "world"), ("c", "0.5,0.5,0", "both")] {
        ok(bulkhead(
            dir.path(),
            &["client", "upsert", "docs", "--id", id, "--vector", vector, "--text", text],
            &as_admin,
        ));
    }
    let search = |key: &str| {
        let with_key = [env[0], ("BULKHEAD_API_KEY", key)];
        ok(bulkhead(
            dir.path(),
            &["client", "search", "docs", "--vector", "0.9,0.2,0", "--k", "3"],
            &with_key,
        ))
    };
    let expected = search(&admin_key);

    let file = dir.path().join("acme.bhar");
    let file_arg = file.to_str().expect("utf-8");
    let exported = ok(run(&["admin", "export-tenant", "acme", file_arg]));
    assert!(exported.contains("exported acme to") && exported.contains("3 points"), "{exported}");
    let mode = std::fs::metadata(&file).expect("archive").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the archive is readable by its owner alone");
    assert!(!dir.path().join("acme.bhar.partial").exists());
    // Never over an existing file.
    let again = run(&["admin", "export-tenant", "acme", file_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"), "{again:?}");

    let imported =
        ok(run(&["admin", "--json", "import-tenant", file_arg, "--as", "acme-copy", "--tier", "shared"]));
    let imported: serde_json::Value = serde_json::from_str(imported.trim()).expect("json");
    assert_eq!(imported["tenant"]["name"], "acme-copy");
    assert_eq!(imported["tenant"]["placement"], "shared", "{imported}");
    assert_eq!((imported["points"].as_u64(), imported["rekeyed"].as_bool()), (Some(3), Some(true)));
    let copy_key = ok(run(&["admin", "key", "issue", "acme-copy", "--role", "reader"])).trim().to_owned();
    assert_eq!(search(&copy_key), expected);

    // The copy moves to its own column family online and answers the same.
    let moved = ok(run(&["admin", "--json", "tenant", "move", "acme-copy", "--tier", "partitioned"]));
    let moved: serde_json::Value = serde_json::from_str(moved.trim()).expect("json");
    assert_eq!(
        (moved["tier"].as_str(), moved["moved"].as_bool()),
        (Some("partitioned"), Some(true)),
        "{moved}"
    );
    assert_eq!(search(&copy_key), expected);

    // Not an archive: refused, and nothing created.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![7u8; 5000]).expect("junk");
    let refused = run(&["admin", "import-tenant", junk.to_str().expect("utf-8"), "--as", "junk"]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("not a Bulkhead tenant archive"),
        "{refused:?}"
    );
    let listed = ok(run(&["admin", "tenant", "list"]));
    assert!(!listed.contains("junk"), "{listed}");
    server.stop();
}
