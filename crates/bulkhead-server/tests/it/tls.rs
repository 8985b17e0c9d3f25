//! TLS: a server with a self-signed certificate made here (`certs.rs`, rcgen) serves the walkthrough
//! to a client that trusts it; a client that trusts another certificate, a plaintext client, a key
//! file others can read and a key that is not the certificate's are each refused with a clear error
//! that holds no key material. The binary over TLS (`serve` from a config file, `admin` and `client`
//! with `--tls-ca`) is tested in `crates/bulkhead-cli/tests/it/tls.rs`.

use crate::certs::{SelfSigned, key_body, self_signed, set_mode};
use crate::harness::{TestServer, req, search, seed};
use bulkhead_server::proto as pb;
use bulkhead_server::{ClientTls, ServerTls, client};

fn trust(cert: &SelfSigned, domain: Option<&str>) -> ClientTls {
    ClientTls::from_pem(cert.cert_pem.as_bytes(), domain.map(str::to_owned)).expect("trust")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trusting_the_certificate_runs_the_walkthrough_over_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["localhost", "127.0.0.1"], 0o600);
    let tls = ServerTls::from_pem_files(&cert.cert, &cert.key).expect("server identity");
    assert!(!format!("{tls:?}").contains(&key_body(&cert.key_pem)[..40]), "Debug prints no key");
    let server = TestServer::with_tls(tls, trust(&cert, None)).await;

    // Tenant, keys, collection and points over TLS (the harness's helpers use the TLS channel).
    let writer = seed(&server, "acme").await;
    let (reader, _) = server.key("acme", pb::Role::Reader).await;
    let mut data = server.data().await;
    let hits = data.search(req(search("docs", [0.9, 0.1, 0.0], 1), &reader)).await.expect("search");
    assert_eq!(hits.into_inner().hits.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["a"]);
    let count = data.count(req(pb::CountRequest { collection: "docs".into() }, &writer)).await;
    assert_eq!(count.expect("count").into_inner().count, 2);

    // By host name too, and by a name given apart from the address.
    let by_name = format!("localhost:{}", server.addr.port());
    client::connect_with(&by_name, Some(&trust(&cert, None))).await.expect("by host name");
    let other = self_signed(dir.path(), "named", &["bulkhead.test"], 0o600);
    let named = TestServer::with_tls(
        ServerTls::from_pem_files(&other.cert, &other.key).expect("identity"),
        trust(&other, Some("bulkhead.test")),
    )
    .await;
    named.tenant("acme").await;
    let wrong_name = client::connect_with(&named.addr.to_string(), Some(&trust(&other, None)))
        .await
        .expect_err("the certificate is not for 127.0.0.1");
    assert!(format!("{wrong_name:#}").contains("not valid for this host name"), "{wrong_name:#}");
    named.stop().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trusts_another_certificate_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["127.0.0.1"], 0o600);
    let stranger = self_signed(dir.path(), "stranger", &["127.0.0.1"], 0o600);
    let server = TestServer::with_tls(
        ServerTls::from_pem_files(&cert.cert, &cert.key).expect("identity"),
        trust(&cert, None),
    )
    .await;
    let refused = client::connect_with(&server.addr.to_string(), Some(&trust(&stranger, None)))
        .await
        .expect_err("untrusted certificate");
    let message = format!("{refused:#}");
    assert!(message.contains("TLS connection to"), "{message}");
    assert!(message.contains("not signed by the trusted CA"), "{message}");
    // An https:// address needs a CA; http:// with a CA is a contradiction. Both say so.
    let https = format!("https://{}", server.addr);
    let no_ca = client::connect_with(&https, None).await.expect_err("https without a CA");
    assert!(format!("{no_ca:#}").contains("--tls-ca"), "{no_ca:#}");
    let http = format!("http://{}", server.addr);
    let mixed = client::connect_with(&http, Some(&trust(&cert, None))).await.expect_err("http with a CA");
    assert!(format!("{mixed:#}").contains("https://"), "{mixed:#}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plaintext_client_at_a_tls_server_gets_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["127.0.0.1"], 0o600);
    let server = TestServer::with_tls(
        ServerTls::from_pem_files(&cert.cert, &cert.key).expect("identity"),
        trust(&cert, None),
    )
    .await;
    // The plaintext connection may fail at once or at its first call, depending on timing; either
    // way the error tells the operator to use TLS.
    let message = match client::connect(&server.addr.to_string()).await {
        Err(e) => format!("{e:#}"),
        Ok(channel) => {
            let call = client::admin(channel)
                .list_tenants(req(pb::ListTenantsRequest {}, &server.admin_token))
                .await
                .expect_err("plaintext call to a TLS server");
            client::describe_status(&call, false)
        }
    };
    assert!(message.contains("https://") && message.contains("--tls-ca"), "{message}");
    assert!(!message.contains(&server.admin_token), "{message}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_at_a_plaintext_server_is_told_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["127.0.0.1"], 0o600);
    let server = TestServer::start().await;
    let refused = client::connect_with(&server.addr.to_string(), Some(&trust(&cert, None)))
        .await
        .expect_err("TLS to a plaintext server");
    assert!(format!("{refused:#}").contains("did not speak TLS"), "{refused:#}");
    server.stop().await;
}

#[test]
fn bad_key_and_certificate_files_are_refused_without_their_contents() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["127.0.0.1"], 0o644);
    let body = key_body(&cert.key_pem);

    // A key file others can read: the same refusal as the master key's.
    let exposed = ServerTls::from_pem_files(&cert.cert, &cert.key).expect_err("mode 644");
    let message = format!("{exposed:#}");
    assert!(message.contains("TLS private key file") && message.contains("chmod 600"), "{message}");
    assert!(message.contains(&cert.key.display().to_string()), "names the path: {message}");

    // A key that is not the certificate's.
    set_mode(&cert.key, 0o600);
    let other = self_signed(dir.path(), "other", &["127.0.0.1"], 0o600);
    let mismatched = ServerTls::from_pem_files(&cert.cert, &other.key).expect_err("mismatched key");
    let message = format!("{mismatched:#}");
    assert!(message.contains("does not belong to the certificate"), "{message}");

    // Unreadable or wrong files.
    let missing = ServerTls::from_pem_files(&dir.path().join("missing.crt"), &cert.key).expect_err("missing");
    assert!(format!("{missing:#}").contains("cannot read the TLS certificate file"), "{missing:#}");
    let swapped = ServerTls::from_pem_files(&cert.key, &cert.key).expect_err("a key as certificate");
    assert!(format!("{swapped:#}").contains("holds no PEM certificate"), "{swapped:#}");
    let garbage = dir.path().join("garbage.key");
    std::fs::write(&garbage, "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")
        .expect("write");
    set_mode(&garbage, 0o600);
    let unparsable = ServerTls::from_pem_files(&cert.cert, &garbage).expect_err("garbage key");
    let unparsable = format!("{unparsable:#}");
    assert!(unparsable.contains("cannot be used"), "{unparsable}");
    assert!(!unparsable.contains("bm90IGEga2V5"), "{unparsable}");

    for message in [exposed, mismatched].map(|e| format!("{e:#} {e:?}")) {
        assert!(!message.contains(&body[..40]), "key material in an error: {message}");
        assert!(!message.contains(&key_body(&other.key_pem)[..40]), "key material in an error: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_over_tls_is_held_until_its_turn_as_over_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = self_signed(dir.path(), "server", &["localhost", "127.0.0.1"], 0o600);
    let tls = ServerTls::from_pem_files(&cert.cert, &cert.key).expect("server identity");
    let server = TestServer::with_tls(tls, trust(&cert, None)).await;
    let writer = seed(&server, "acme").await;
    let quotas = bulkhead_query::TenantQuotas { requests_per_second: Some(2), ..Default::default() };
    crate::harness::set_quotas(&server, "acme", quotas);
    let mut data = server.data().await;
    let count = || req(pb::CountRequest { collection: "docs".into() }, &writer);
    let mut refused_after = None;
    for _ in 0..4 {
        let sent = std::time::Instant::now();
        if let Err(status) = data.count(count()).await {
            assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
            refused_after = Some(sent.elapsed());
            break;
        }
    }
    // Two a second: a refusal's turn is half a second after the one before it (the first's
    // predecessor is long past, so at least one interval from now).
    let after = refused_after.expect("the third or fourth call is over the rate");
    assert!(after >= std::time::Duration::from_millis(400), "held over TLS too: {after:?}");
    server.stop().await;
}
