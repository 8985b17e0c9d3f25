//! Requests as the admission tests send them: hand-made wire bytes (two bytes per empty point), raw
//! HTTP/2 calls that read a call's status whether or not the server read its body, and the usual
//! messages with their bearer credential. Shared with the `bulkhead` binary's tests
//! (`crates/bulkhead-cli/tests/it/main.rs` includes this file), so it names the server's types only
//! through `bulkhead_server`.

use bulkhead_server::client::{self, Code, Request};
use bulkhead_server::proto as pb;
use bytes::{BufMut, Bytes, BytesMut};

// ----------------------------------------------------------------------------------------------
// Hand-made wire bytes
// ----------------------------------------------------------------------------------------------

pub fn varint(out: &mut BytesMut, mut value: u64) {
    while value >= 0x80 {
        out.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// A length-delimited field.
pub fn field(out: &mut BytesMut, number: u32, bytes: &[u8]) {
    varint(out, u64::from(number << 3 | 2));
    varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// `count` copies of an empty length-delimited field `number` (two bytes each).
pub fn empties(out: &mut BytesMut, number: u8, count: usize) {
    let pair = [number << 3 | 2, 0];
    out.reserve(2 * count);
    for _ in 0..count {
        out.put_slice(&pair);
    }
}

/// The gRPC framing of one message: a zero flag, the length, the bytes.
pub fn framed(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.len());
    out.put_u8(0);
    out.put_u32(message.len() as u32);
    out.put_slice(message);
    out.freeze()
}

/// An `UpsertRequest` for `docs` with `points` empty points.
pub fn empty_points(points: usize) -> Bytes {
    let mut message = BytesMut::new();
    field(&mut message, 1, b"docs");
    empties(&mut message, 2, points);
    framed(&message)
}

// ----------------------------------------------------------------------------------------------
// Raw HTTP/2 calls
// ----------------------------------------------------------------------------------------------

/// The status of a call: code and message (`OK` with an empty message on success), and how many
/// bytes of response messages came before it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub code: Code,
    pub message: String,
    pub data: usize,
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

pub fn answer(headers: &http::HeaderMap) -> Option<Answer> {
    let code = headers.get("grpc-status")?;
    let message =
        headers.get("grpc-message").and_then(|m| m.to_str().ok()).map(percent_decode).unwrap_or_default();
    Some(Answer { code: Code::from_bytes(code.as_bytes()), message, data: 0 })
}

/// One HTTP/2 connection to the server, driven by its own task.
pub struct Raw {
    pub send: h2::client::SendRequest<Bytes>,
    driver: tokio::task::JoinHandle<()>,
    address: String,
}

impl Raw {
    pub async fn connect(address: &str) -> Raw {
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
    pub async fn call(&self, path: &str, token: Option<&str>, body: Bytes) -> Answer {
        self.call_within(path, token, body, None).await
    }

    /// As [`Raw::call`], with a `grpc-timeout` when given one.
    pub async fn call_within(
        &self,
        path: &str,
        token: Option<&str>,
        body: Bytes,
        timeout: Option<&str>,
    ) -> Answer {
        let mut request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{}{path}", self.address))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(timeout) = timeout {
            request = request.header("grpc-timeout", timeout);
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
        let mut data = 0;
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("response data");
            data += chunk.len();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await.expect("trailers").expect("trailers present");
        Answer { data, ..answer(&trailers).expect("grpc-status in the trailers") }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

pub const UPSERT: &str = "/bulkhead.v1.DataPlane/Upsert";
pub const SEARCH: &str = "/bulkhead.v1.DataPlane/Search";
pub const COUNT: &str = "/bulkhead.v1.DataPlane/Count";

pub fn assert_answer(answer: &Answer, code: Code, needle: &str) {
    assert_eq!(answer.code, code, "{answer:?}");
    assert!(answer.message.contains(needle), "{answer:?} does not mention {needle:?}");
}

// ----------------------------------------------------------------------------------------------
// Messages
// ----------------------------------------------------------------------------------------------

/// `message` with the bearer credential.
pub fn req<T>(message: T, token: &str) -> Request<T> {
    client::authorized(message, token).expect("header")
}

pub fn point(id: &str, vector: [f32; 3], text: &str) -> pb::Point {
    pb::Point { id: id.into(), vector: vector.to_vec(), text: text.into(), ..Default::default() }
}

pub fn search(collection: &str, vector: [f32; 3], k: u32) -> pb::SearchRequest {
    pb::SearchRequest { collection: collection.into(), vector: vector.to_vec(), k, ..Default::default() }
}
