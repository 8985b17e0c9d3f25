//! The client side: a channel to a running server, and requests that carry a bearer credential. Used
//! by `bulkhead admin` / `bulkhead client` (the `bulkhead-cli` crate) and by the tests, which reach
//! the gRPC types they need through the re-exports here: only this crate knows tonic.

use crate::convert;
use crate::proto as pb;
use crate::proto::admin_client::AdminClient;
use crate::proto::data_plane_client::DataPlaneClient;
use crate::tls::{ClientTls, tls_reason};
use crate::{ServerError, limits};
use bulkhead_query::{Metric, Role};

/// The gRPC types a client names: a connection, a request and its response, a failed call's status
/// and its code.
pub use tonic::transport::Channel;
pub use tonic::{Code, Request, Response, Status, Streaming};

/// Where `bulkhead serve` listens by default, and where the clients look for it.
pub const DEFAULT_ADDRESS: &str = "127.0.0.1:7450";

/// Connects to a plaintext server at `address` (`host:port`, or a full `http://` URL).
pub async fn connect(address: &str) -> Result<Channel, ServerError> {
    connect_with(address, None).await
}

/// Connects to a server at `address`: over TLS trusting `tls` (`host:port` or an `https://` URL), or
/// in plaintext without it (`host:port` or an `http://` URL). A failure says which side of that
/// choice is the likely cause (a plaintext client at a TLS server, a certificate not trusted).
pub async fn connect_with(address: &str, tls: Option<&ClientTls>) -> Result<Channel, ServerError> {
    let url = match (address.split_once("://"), tls) {
        (None, None) => format!("http://{address}"),
        (None, Some(_)) => format!("https://{address}"),
        (Some(("http", _)), None) | (Some(("https", _)), Some(_)) => address.to_owned(),
        (Some(("https", _)), None) => {
            return Err(ServerError::Address(format!(
                "{address} is an https:// address: give the certificate to trust with --tls-ca FILE"
            )));
        }
        (Some(("http", _)), Some(_)) => {
            return Err(ServerError::Address(format!(
                "--tls-ca is for TLS servers: use https:// instead of http:// in {address}"
            )));
        }
        (Some((scheme, _)), _) => {
            return Err(ServerError::Address(format!(
                "unknown scheme {scheme}:// in {address}: use http:// or https://"
            )));
        }
    };
    let mut endpoint = Channel::from_shared(url)
        .map_err(|e| ServerError::Address(format!("{address} is not a valid address: {e}")))?
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint
            .tls_config(tls.config())
            .map_err(|e| ServerError::TlsSettings { address: address.to_owned(), reason: tls_reason(&e) })?;
    }
    let channel = endpoint.connect().await.map_err(|e| {
        let (address, reason) = (address.to_owned(), tls_reason(&e));
        match tls {
            Some(_) => ServerError::TlsConnect { address, reason },
            None => ServerError::Connect { address, reason },
        }
    })?;
    Ok(channel)
}

/// Whether `address` (`host:port`, or an `http://` / `https://` URL) names this machine's loopback:
/// `localhost`, `127.0.0.0/8` or `::1`. A name that merely resolves there is not trusted as such.
pub fn is_loopback_address(address: &str) -> bool {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.strip_prefix('[') {
        // [v6]:port
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A call's error as one line, with a hint when a plaintext client was talking to a TLS server (the
/// server's TLS handshake fails on the HTTP/2 preface, so the client sees a broken connection, not a
/// TLS error).
pub fn describe_status(status: &tonic::Status, tls: bool) -> String {
    let mut line = format!("{:?}: {}", status.code(), status.message());
    // A status the server sent has no source; one the client made from a failed connection does.
    // A connection a TLS server closed on a plaintext client's first call can also surface as
    // CANCELLED.
    let broken = matches!(
        status.code(),
        tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal | tonic::Code::Cancelled
    );
    match std::error::Error::source(status) {
        Some(source) if broken => {
            let cause = tls_reason(source);
            if !line.contains(&cause) {
                line.push_str(&format!(" ({cause})"));
            }
        }
        None if status.code() == tonic::Code::Cancelled => {}
        _ => return line,
    }
    if !tls {
        line.push_str("; if the server serves TLS, connect with an https:// address and --tls-ca FILE");
    }
    line
}

/// The wire form of a role, for the requests a client builds.
pub fn role_to_proto(role: Role) -> pb::Role {
    convert::role_to(role)
}

/// The role a response names, if it is one this client knows.
pub fn role_from_proto(role: i32) -> Option<Role> {
    convert::role_from(role).ok()
}

/// The wire form of a metric, for the requests a client builds.
pub fn metric_to_proto(metric: Metric) -> pb::Metric {
    convert::metric_to(metric)
}

/// A data-plane client over a channel, as [`data_plane`] makes it.
pub type DataPlane = DataPlaneClient<Channel>;

/// An admin client over a channel, as [`admin`] makes it.
pub type Admin = AdminClient<Channel>;

/// A data-plane client that accepts responses up to the server's message limit.
pub fn data_plane(channel: Channel) -> DataPlane {
    DataPlaneClient::new(channel)
        .max_decoding_message_size(limits::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(usize::MAX)
}

/// An admin client.
pub fn admin(channel: Channel) -> Admin {
    AdminClient::new(channel).max_decoding_message_size(limits::MAX_MESSAGE_BYTES)
}

/// `message` with `authorization: Bearer <token>`.
pub fn authorized<T>(message: T, token: &str) -> Result<Request<T>, ServerError> {
    let mut request = Request::new(message);
    let value = format!("Bearer {token}").parse().map_err(|_| ServerError::CredentialHeader)?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The status the standard health service (`grpc.health.v1.Health/Check`) reports for `service`
/// (`""`: the server as a whole; `bulkhead.v1.DataPlane`, `bulkhead.v1.Admin`), by its name
/// (`SERVING`, `NOT_SERVING`, ...). The call carries no credential: the health service needs none.
pub async fn health(channel: Channel, service: &str) -> Result<&'static str, Status> {
    use tonic_health::pb::health_client::HealthClient;
    let request = tonic_health::pb::HealthCheckRequest { service: service.to_owned() };
    let answer = HealthClient::new(channel).check(request).await?.into_inner();
    Ok(answer.status().as_str_name())
}

/// The wire form of a metric a response names, if it is one this client knows.
pub fn metric_from_proto(metric: i32) -> Option<Metric> {
    convert::metric_from(metric).ok()
}

/// Cuts a stream of points into `Upsert` requests that each stay within the server's limits: at
/// most `MAX_BATCH_POINTS` points, at most `MAX_BATCH_BYTES` encoded bytes (the encoding is never
/// smaller than the library's byte count of the same points, and half the `Upsert` message limit)
/// and at most `MAX_REQUEST_ELEMENTS` elements as the codec counts them (`codec.rs`). A point too
/// large for any batch goes alone into one, and the server's refusal says why.
#[derive(Default)]
pub struct UpsertBatcher {
    collection: String,
    points: Vec<pb::Point>,
    bytes: usize,
    elements: usize,
}

/// Counts only: the collection's name and the points are tenant data.
impl std::fmt::Debug for UpsertBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpsertBatcher")
            .field("pending", &self.points.len())
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl UpsertBatcher {
    /// A batcher of points for `collection`.
    pub fn new(collection: &str) -> UpsertBatcher {
        UpsertBatcher { collection: collection.to_owned(), ..UpsertBatcher::default() }
    }

    /// Adds `point`. Returns the batch so far first if `point` does not fit in it.
    pub fn push(&mut self, point: pb::Point) -> Option<pb::UpsertRequest> {
        let bytes = prost::encoding::message::encoded_len(2, &point);
        let elements = point_elements(&point);
        let full = !self.points.is_empty()
            && (self.points.len() >= bulkhead_query::limits::MAX_BATCH_POINTS
                || self.base_bytes() + self.bytes + bytes > bulkhead_query::limits::MAX_BATCH_BYTES
                || self.elements + elements > limits::MAX_REQUEST_ELEMENTS);
        let batch = if full { self.take() } else { None };
        self.points.push(point);
        self.bytes += bytes;
        self.elements += elements;
        batch
    }

    /// The points not yet returned in a batch, as one (none if there are none).
    pub fn take(&mut self) -> Option<pb::UpsertRequest> {
        if self.points.is_empty() {
            return None;
        }
        (self.bytes, self.elements) = (0, 0);
        let points = std::mem::take(&mut self.points);
        Some(pb::UpsertRequest { collection: self.collection.clone(), points })
    }

    /// How many points wait for the next batch.
    pub fn pending(&self) -> usize {
        self.points.len()
    }

    /// The encoded bytes of a request with no points (its collection's field).
    fn base_bytes(&self) -> usize {
        prost::encoding::string::encoded_len(1, &self.collection)
    }
}

/// The elements the codec counts for one point of an `UpsertRequest`: the point, each metadata entry
/// and its value (a keyword list and each of its keywords), the ACL and each of its names. Packed
/// floats and singular strings count nothing.
fn point_elements(point: &pb::Point) -> usize {
    let metadata: usize = point
        .metadata
        .values()
        .map(|value| match &value.kind {
            Some(pb::meta_value::Kind::Keywords(list)) => 3 + list.values.len(),
            _ => 2,
        })
        .sum();
    let acl = point.acl.as_ref().map_or(0, |acl| 1 + acl.users.len() + acl.groups.len());
    1 + metadata + acl
}

/// Streams the archive of `tenant` (`ExportTenant`) into `sink`, a chunk (at most
/// `MAX_ARCHIVE_CHUNK_BYTES`) at a time, and returns the export's summary, which only a complete
/// stream ends with. A `sink` error stops the call (the server stops exporting) and is returned
/// as an `ABORTED` status made here, naming it.
pub async fn export_tenant(
    admin: &mut Admin,
    token: &str,
    tenant: &str,
    mut sink: impl FnMut(&[u8]) -> std::io::Result<()>,
) -> Result<pb::ExportTenantSummary, Status> {
    let request = authorized(pb::ExportTenantRequest { tenant: tenant.to_owned() }, token)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let mut stream = admin.export_tenant(request).await?.into_inner();
    while let Some(message) = stream.message().await? {
        if let Some(summary) = message.summary {
            return match stream.message().await? {
                None => Ok(summary),
                Some(_) => Err(Status::data_loss("the export's stream goes on after its summary")),
            };
        }
        sink(&message.data).map_err(|e| Status::aborted(format!("could not write the archive: {e}")))?;
    }
    Err(Status::data_loss("the export's stream ended without its summary: the archive is incomplete"))
}

/// Imports an archive (`ImportTenant`) read from `input` on a blocking thread and sent in chunks
/// of `MAX_ARCHIVE_CHUNK_BYTES` after `start`; `progress` gets the bytes sent so far. A read
/// error ends the stream early (the server then refuses the archive as cut short, and nothing of
/// it stays) and is returned as an `ABORTED` status made here, naming it.
pub async fn import_tenant(
    admin: &mut Admin,
    token: &str,
    start: pb::ImportTenantStart,
    mut input: impl std::io::Read + Send + 'static,
    mut progress: impl FnMut(u64) + Send + 'static,
) -> Result<pb::ImportTenantResponse, Status> {
    use pb::import_tenant_request::Kind;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let first = pb::ImportTenantRequest { kind: Some(Kind::Start(start)) };
    let reading = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if tx.blocking_send(first).is_err() {
            return Ok(());
        }
        let mut sent = 0u64;
        loop {
            let mut chunk = vec![0u8; limits::MAX_ARCHIVE_CHUNK_BYTES];
            let mut filled = 0;
            while filled < chunk.len() {
                match input.read(&mut chunk[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                return Ok(());
            }
            chunk.truncate(filled);
            sent += filled as u64;
            // The call ended (refused, or failed): its status says why.
            if tx.blocking_send(pb::ImportTenantRequest { kind: Some(Kind::Chunk(chunk)) }).is_err() {
                return Ok(());
            }
            progress(sent);
        }
    });
    let request = authorized(tokio_stream::wrappers::ReceiverStream::new(rx), token)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
    let answer = admin.import_tenant(request).await;
    match reading.await {
        Ok(Err(e)) => return Err(Status::aborted(format!("could not read the archive: {e}"))),
        Err(e) => return Err(Status::aborted(format!("the archive's reader failed: {e}"))),
        Ok(Ok(())) => {}
    }
    Ok(answer?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::{UpsertBatcher, is_loopback_address};
    use crate::codec::count_request_elements;
    use crate::proto as pb;
    use prost::Message;

    /// Every batch fits each limit, and no batch was cut before it had to be.
    fn check_batches(points: impl IntoIterator<Item = pb::Point>) -> Vec<usize> {
        let mut batcher = UpsertBatcher::new("docs");
        let mut batches = Vec::new();
        for point in points {
            batches.extend(batcher.push(point));
        }
        batches.extend(batcher.take());
        assert_eq!(batcher.pending(), 0);
        for batch in &batches {
            let bytes = batch.encode_to_vec();
            assert!(batch.points.len() <= bulkhead_query::limits::MAX_BATCH_POINTS);
            assert!(bytes.len() <= bulkhead_query::limits::MAX_BATCH_BYTES, "{}", bytes.len());
            let elements = count_request_elements::<pb::UpsertRequest>(&bytes).expect("within the limit");
            assert!(elements <= crate::limits::MAX_REQUEST_ELEMENTS);
        }
        batches.iter().map(|b| b.points.len()).collect()
    }

    fn point(id: usize, text: usize, keywords: usize) -> pb::Point {
        let mut metadata = std::collections::HashMap::new();
        for field in 0..8 {
            let values = (0..keywords).map(|k| format!("k{k}")).collect();
            let kind = pb::meta_value::Kind::Keywords(pb::KeywordList { values });
            metadata.insert(format!("f{field}"), pb::MetaValue { kind: Some(kind) });
        }
        let acl = Some(pb::Acl { users: vec!["alice".into()], groups: vec!["eng".into()] });
        let text = "x".repeat(text);
        pb::Point { id: id.to_string(), vector: vec![0.5; 8], text, metadata, source_uri: None, acl }
    }

    #[test]
    fn upsert_batches_stay_within_every_limit() {
        // Small points: cut by the point count.
        assert_eq!(check_batches((0..2500).map(|i| point(i, 10, 0))), [1024, 1024, 452]);
        // Large texts: cut by bytes (256 KiB each, 127 fit in 32 MiB with their framing).
        let sizes = check_batches((0..300).map(|i| point(i, 256 * 1024, 0)));
        assert_eq!(sizes.iter().sum::<usize>(), 300);
        assert_eq!(sizes[0], 127, "{sizes:?}");
        // Many keywords: cut by elements (8 lists of 60 keywords: 1 + 8 * 63 + 3 = 508 each).
        let sizes = check_batches((0..1500).map(|i| point(i, 0, 60)));
        assert_eq!(sizes[0], crate::limits::MAX_REQUEST_ELEMENTS / 508, "{sizes:?}");
        assert!(check_batches(std::iter::empty()).is_empty());
    }

    #[test]
    fn loopback_addresses_are_told_apart() {
        for address in [
            "127.0.0.1:7450",
            "http://127.0.0.1:7450",
            "localhost:1",
            "[::1]:7450",
            "http://[::1]:80/",
            "127.8.9.1:1",
        ] {
            assert!(is_loopback_address(address), "{address}");
        }
        for address in [
            "10.0.0.1:7450",
            "http://db.example:7450",
            "0.0.0.0:7450",
            "[::]:7450",
            "[2001:db8::1]:1",
            "localhost.example:1",
            "https://192.168.1.2:443",
        ] {
            assert!(!is_loopback_address(address), "{address}");
        }
    }
}

/// An upsert encoded once, to be sent as it is any number of times (a load generator's batches, a
/// retried batch) without building and encoding its points again.
#[derive(Clone)]
pub struct EncodedUpsert(bytes::Bytes);

/// Its size only: the points are tenant data.
impl std::fmt::Debug for EncodedUpsert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncodedUpsert").field("bytes", &self.0.len()).finish()
    }
}

impl EncodedUpsert {
    /// Encodes `request`.
    pub fn new(request: &pb::UpsertRequest) -> EncodedUpsert {
        EncodedUpsert(prost::Message::encode_to_vec(request).into())
    }

    /// Sends the upsert over `channel` with `token`, within `timeout`.
    pub async fn send(
        &self,
        channel: Channel,
        token: &str,
        timeout: std::time::Duration,
    ) -> Result<(), Status> {
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|e| Status::unavailable(format!("the connection is not ready: {e}")))?;
        let mut request =
            authorized(self.0.clone(), token).map_err(|_| Status::invalid_argument("a malformed API key"))?;
        request.set_timeout(timeout);
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/bulkhead.v1.DataPlane/Upsert");
        grpc.unary(request, path, EncodedCodec).await.map(|_| ())
    }
}

/// The codec of [`EncodedUpsert::send`]: the request goes out as the bytes it already is; the
/// answer is decoded as usual.
struct EncodedCodec;

impl tonic::codec::Codec for EncodedCodec {
    type Encode = bytes::Bytes;
    type Decode = pb::UpsertResponse;
    type Encoder = EncodedEncoder;
    type Decoder = <tonic_prost::ProstCodec<(), pb::UpsertResponse> as tonic::codec::Codec>::Decoder;

    fn encoder(&mut self) -> EncodedEncoder {
        EncodedEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic::codec::Codec::decoder(&mut tonic_prost::ProstCodec::<(), pb::UpsertResponse>::default())
    }
}

/// Copies an encoded message into the call's buffer.
struct EncodedEncoder;

impl tonic::codec::Encoder for EncodedEncoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn encode(&mut self, item: bytes::Bytes, dst: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put(dst, item);
        Ok(())
    }
}
