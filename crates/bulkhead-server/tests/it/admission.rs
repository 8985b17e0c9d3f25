//! Admission: what a connection may cost before it is served. Calls are made over raw HTTP/2, so
//! that the tests control every byte on the wire.

use crate::harness::TestServer;
use bulkhead_server::{ServerLimits, limits};
use bytes::{BufMut, Bytes, BytesMut};
use std::time::{Duration, Instant};
use tonic::Code;

// ----------------------------------------------------------------------------------------------
// Hand-made wire bytes
// ----------------------------------------------------------------------------------------------

fn varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// A length-delimited field.
fn field(out: &mut BytesMut, number: u32, bytes: &[u8]) {
    varint(out, u64::from(number << 3 | 2));
    varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// The gRPC framing of one message: a zero flag, the length, the bytes.
fn framed(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

// ----------------------------------------------------------------------------------------------
// Raw HTTP/2 calls
// ----------------------------------------------------------------------------------------------

/// The status of a call: code and message (`OK` with an empty message on success).
#[derive(Debug, Clone)]
struct Answer {
    code: Code,
    message: String,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&text[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn answer(headers: &http::HeaderMap) -> Option<Answer> {
    let code = headers.get("grpc-status")?;
    let message =
        headers.get("grpc-message").and_then(|m| m.to_str().ok()).map(percent_decode).unwrap_or_default();
    Some(Answer { code: Code::from_bytes(code.as_bytes()), message })
}

/// One HTTP/2 connection to the server, driven by its own task.
struct Raw {
    send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
    address: String,
}

impl Raw {
    async fn connect(address: &str) -> Raw {
        let tcp = tokio::net::TcpStream::connect(address).await.expect("tcp");
        tcp.set_nodelay(true).expect("nodelay");
        let (send, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Raw { send, driver, address: address.to_owned() }
    }

    /// Sends `body` (already framed) to `path` and returns the call's status. The status is read
    /// as soon as the server answers, whether or not it read the body.
    async fn call(&self, path: &str, token: Option<&str>, body: Bytes) -> Answer {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.address))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(()).expect("request");
        let mut send = self.send.clone().ready().await.expect("ready");
        let (response, mut stream) = send.send_request(request, false).expect("send request");
        // The server may answer (and reset the stream) before it took the body: a failed send is
        // expected then.
        let _ = stream.send_data(body, true);
        let response = response.await.expect("response headers");
        if let Some(answer) = answer(response.headers()) {
            return answer;
        }
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("response data");
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await.expect("trailers").expect("trailers present");
        answer(&trailers).expect("grpc-status in the trailers")
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

const COUNT: &str = "/bulkhead.v1.DataPlane/Count";

// ----------------------------------------------------------------------------------------------
// Tests
// ----------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let two = ServerLimits { max_connections: 2, ..ServerLimits::default() };
    let server = TestServer::with_limits(two).await;
    let address = server.addr.to_string();
    let count_body = {
        let mut body = BytesMut::new();
        field(&mut body, 1, b"docs");
        framed(&body)
    };
    let first = Raw::connect(&address).await;
    let second = Raw::connect(&address).await;
    for raw in [&first, &second] {
        assert_eq!(raw.call(COUNT, None, count_body.clone()).await.code, Code::Unauthenticated);
    }
    // The third connection is made by the kernel, but the server does not serve it.
    let third = Raw::connect(&address).await;
    let pending = tokio::spawn({
        let body = count_body.clone();
        async move {
            let answer = third.call(COUNT, None, body).await;
            (answer, third)
        }
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!pending.is_finished(), "a connection beyond the cap was served");
    drop(first);
    let (answer, third) = tokio::time::timeout(Duration::from_secs(5), pending)
        .await
        .expect("served once a connection closed")
        .expect("task");
    assert_eq!(answer.code, Code::Unauthenticated);
    assert!(answer.message.contains("missing credential"), "{answer:?}");
    drop((second, third));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_does_not_introduce_itself_is_closed_and_frees_its_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let one = ServerLimits { max_connections: 1, ..ServerLimits::default() };
    let server = TestServer::with_limits(one).await;
    let address = server.addr.to_string();
    let mut dribbling = tokio::net::TcpStream::connect(&address).await.expect("tcp");
    let started = Instant::now();
    // Part of the HTTP/2 preface, then nothing: the server closes the connection after the timeout
    // (reading what it sent meanwhile, its own SETTINGS, until the end).
    dribbling.write_all(b"PRI * HTTP/2.0").await.expect("write");
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(limits::CONNECTION_HANDSHAKE_TIMEOUT + Duration::from_secs(5), async {
        loop {
            match dribbling.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the connection was closed");
    assert!(started.elapsed() >= limits::CONNECTION_HANDSHAKE_TIMEOUT - Duration::from_millis(500));
    // Its slot is free again.
    let raw = Raw::connect(&address).await;
    let mut body = BytesMut::new();
    field(&mut body, 1, b"docs");
    assert_eq!(raw.call(COUNT, None, framed(&body)).await.code, Code::Unauthenticated);
    drop(raw);
    server.stop().await;
}
