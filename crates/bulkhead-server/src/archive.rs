//! The archive calls of the admin service, `ExportTenant` and `ImportTenant`: a tenant archive
//! (`bulkhead-storage`'s `archive.rs`) streamed over gRPC in chunks of at most
//! [`MAX_ARCHIVE_CHUNK_BYTES`], with the storage work on the blocking pool.
//!
//! An export writes into a [`ChunkWriter`], a `Write` that cuts the archive into chunks and sends
//! each through a bounded channel ([`ARCHIVE_CHANNEL_CHUNKS`]) that the response stream drains: a
//! client that reads slowly slows the export down, and one that stops reading stops it at the
//! call's deadline. An import reads from a [`ChunkReader`], a `Read` over a bounded channel that
//! the handler feeds from the request stream, one message at a time; each message's request memory
//! is returned once its chunk has been read ([`MessageRelease`]). A stream that ends before the
//! archive does, or fails, or passes its deadline, makes the reader fail, and the import leaves
//! nothing; the answer is the import's own outcome, so a call never says "failed" about an import
//! that committed.

use crate::admission::AdmittedOperator;
use crate::budget::{MessageRelease, release_decoded};
use crate::convert;
use crate::limits::{ARCHIVE_CHANNEL_CHUNKS, MAX_ARCHIVE_CHUNK_BYTES};
use crate::proto as pb;
use crate::proto::import_tenant_request::Kind;
use crate::server::{Shared, not_admitted};
use crate::status::{self, invalid};
use bulkhead_query::{Placement, TenantName};
use std::io::{ErrorKind, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

/// The response stream of `ExportTenant`.
pub(crate) type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::ArchiveChunk, Status>> + Send>>;

/// What the export's blocking work sends to the response stream.
type Sent = Result<pb::ArchiveChunk, Status>;

/// The archive's bytes, cut into chunks and sent through the channel; a send waits for room until
/// the call's deadline.
struct ChunkWriter {
    tx: mpsc::Sender<Sent>,
    runtime: tokio::runtime::Handle,
    deadline: Instant,
    buffer: Vec<u8>,
    /// Why the stream stopped taking chunks, when it was the deadline.
    failed: Option<Status>,
    budget: std::time::Duration,
}

impl ChunkWriter {
    fn send(&mut self, item: Sent) -> std::io::Result<()> {
        let sent = self.runtime.block_on(timeout_at(self.deadline, self.tx.send(item)));
        match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_closed)) => Err(std::io::Error::new(ErrorKind::BrokenPipe, "the client went away")),
            Err(_elapsed) => {
                self.failed = Some(status::deadline_exceeded(self.budget));
                Err(std::io::Error::new(ErrorKind::TimedOut, "the export's deadline passed"))
            }
        }
    }

    fn send_buffer(&mut self) -> std::io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(MAX_ARCHIVE_CHUNK_BYTES));
        self.send(Ok(pb::ArchiveChunk { data, summary: None }))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(MAX_ARCHIVE_CHUNK_BYTES - self.buffer.len());
        self.buffer.extend_from_slice(&bytes[..n]);
        if self.buffer.len() == MAX_ARCHIVE_CHUNK_BYTES {
            self.send_buffer()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_buffer()
    }
}

/// `ExportTenant`: the export runs on the blocking pool with a work permit; its first chunk (or
/// its refusal, which then is the call's status: an unknown tenant is `NOT_FOUND`, not a stream
/// that fails) is awaited before the response starts.
pub(crate) async fn export(
    shared: &Arc<Shared>,
    request: Request<pb::ExportTenantRequest>,
) -> Result<Response<ExportStream>, Status> {
    const OPERATION: &str = "admin-export-tenant";
    let (_, extensions, message) = request.into_parts();
    let AdmittedOperator(timing) = extensions.get::<AdmittedOperator>().cloned().ok_or_else(not_admitted)?;
    let name = TenantName::new(message.tenant).map_err(status::from_storage)?;
    let permit = shared.work_permit(timing).await?;
    let (tx, mut rx) = mpsc::channel::<Sent>(ARCHIVE_CHANNEL_CHUNKS);
    let for_work = Arc::clone(shared);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChunkWriter {
            tx,
            runtime,
            deadline: timing.deadline,
            buffer: Vec::with_capacity(MAX_ARCHIVE_CHUNK_BYTES),
            failed: None,
            budget: timing.budget,
        };
        let exported = for_work.db.operator().export_tenant(&name, &mut out, &mut |_| {});
        let last = match exported {
            Ok(summary) => Ok(pb::ArchiveChunk {
                data: Vec::new(),
                summary: Some(pb::ExportTenantSummary {
                    archive_id: summary.archive_id,
                    points: summary.progress.points,
                    records: summary.progress.records,
                    bytes: summary.progress.bytes,
                }),
            }),
            Err(e) => Err(out.failed.take().unwrap_or_else(|| status::from_storage(e))),
        };
        let outcome = last.as_ref().map_or_else(|s| status::reason_code(s.code()), |_| "ok");
        if let Err(status) = &last
            && status.code() != tonic::Code::NotFound
        {
            tracing::warn!(code = ?status.code(), "a tenant export failed");
        }
        // The end (or the failure) is sent like a chunk; if the stream is gone, nobody waits for it.
        let _ = out.send(last);
        for_work.count_admin(OPERATION, outcome, timing);
    });
    let first = match timeout_at(timing.deadline, rx.recv()).await {
        Ok(Some(Ok(first))) => first,
        Ok(Some(Err(status))) => return Err(status),
        Ok(None) => return Err(Status::internal("internal error (see the server log)")),
        Err(_elapsed) => return Err(status::deadline_exceeded(timing.budget)),
    };
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx);
    let stream: ExportStream = Box::pin(tokio_stream::once(Ok(first)).chain(rest));
    Ok(Response::new(stream))
}

/// What the import's handler feeds its reader.
enum Fed {
    /// The next chunk, and the release of its message's request memory once read.
    Chunk(Vec<u8>, Option<MessageRelease>),
    /// The request stream ended: the archive's end.
    End,
}

/// The archive as the request stream brings it. A channel closed without [`Fed::End`] (the
/// stream failed, passed its deadline, or the client went away) is an error, never an end.
struct ChunkReader {
    rx: mpsc::Receiver<Fed>,
    chunk: Vec<u8>,
    at: usize,
    release: Option<MessageRelease>,
    ended: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            if self.ended {
                return Ok(0);
            }
            // The chunk read last is consumed: its message's memory goes back to the budget.
            self.release = None;
            match self.rx.blocking_recv() {
                Some(Fed::Chunk(chunk, release)) => {
                    (self.chunk, self.at, self.release) = (chunk, 0, release);
                }
                Some(Fed::End) => self.ended = true,
                None => {
                    return Err(std::io::Error::new(
                        ErrorKind::ConnectionAborted,
                        "the archive's stream broke",
                    ));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.at);
        buf[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// How an import's first message says to import.
fn import_start(
    first: Option<pb::ImportTenantRequest>,
) -> Result<(Option<TenantName>, Option<Placement>), Status> {
    let start = match first.and_then(|m| m.kind) {
        Some(Kind::Start(start)) => start,
        None => return Err(invalid("start", "the first message of an import must be `start`; got none")),
        Some(Kind::Chunk(_)) => {
            return Err(invalid("start", "the first message of an import must be `start`, not a chunk"));
        }
    };
    let new_name = match start.new_name.is_empty() {
        true => None,
        false => Some(TenantName::new(start.new_name).map_err(status::from_storage)?),
    };
    let tier = match start.tier.as_str() {
        "" => None,
        tier => Some(Placement::from_name(tier).ok_or_else(|| {
            invalid("tier", "must be `partitioned`, `shared` or `dedicated` (or empty: the default)")
        })?),
    };
    Ok((new_name, tier))
}

/// Feeds the request stream's chunks to the import's reader until the stream ends (`Ok`), fails,
/// carries something else than a chunk, or passes the deadline (`Err`, and the reader then fails).
async fn feed(
    stream: &mut Streaming<pb::ImportTenantRequest>,
    tx: &mpsc::Sender<Fed>,
    deadline: Instant,
    budget: std::time::Duration,
) -> Result<(), Status> {
    loop {
        let next =
            timeout_at(deadline, stream.message()).await.map_err(|_| status::deadline_exceeded(budget))??;
        let fed = match next {
            None => Fed::End,
            Some(pb::ImportTenantRequest { kind: Some(Kind::Chunk(chunk)) }) => {
                if chunk.len() > MAX_ARCHIVE_CHUNK_BYTES {
                    return Err(Status::resource_exhausted(format!(
                        "an archive chunk of {} bytes is over the limit of {MAX_ARCHIVE_CHUNK_BYTES} bytes \
                         (MAX_ARCHIVE_CHUNK_BYTES, docs/LIMITS.md)",
                        chunk.len()
                    )));
                }
                Fed::Chunk(chunk, release_decoded())
            }
            Some(_) => return Err(invalid("chunk", "every message of an import after the first is a chunk")),
        };
        let end = matches!(fed, Fed::End);
        match timeout_at(deadline, tx.send(fed)).await {
            Err(_elapsed) => return Err(status::deadline_exceeded(budget)),
            // The import stopped reading (it failed, or it is done): its outcome says which.
            Ok(Err(_closed)) => return Ok(()),
            Ok(Ok(())) if end => return Ok(()),
            Ok(Ok(())) => {}
        }
    }
}

/// `ImportTenant`: the first message says how, the import runs on the blocking pool with a work
/// permit and reads the chunks the handler feeds it.
pub(crate) async fn import(
    shared: &Arc<Shared>,
    request: Request<Streaming<pb::ImportTenantRequest>>,
) -> Result<Response<pb::ImportTenantResponse>, Status> {
    const OPERATION: &str = "admin-import-tenant";
    let (_, extensions, mut stream) = request.into_parts();
    let AdmittedOperator(timing) = extensions.get::<AdmittedOperator>().cloned().ok_or_else(not_admitted)?;
    let first = timeout_at(timing.deadline, stream.message())
        .await
        .map_err(|_| status::deadline_exceeded(timing.budget))??;
    // The first message's memory goes back at once.
    drop(release_decoded());
    let (new_name, tier) = import_start(first)?;
    let permit = shared.work_permit(timing).await?;
    let (tx, rx) = mpsc::channel::<Fed>(ARCHIVE_CHANNEL_CHUNKS);
    let for_work = Arc::clone(shared);
    let work = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut reader = ChunkReader { rx, chunk: Vec::new(), at: 0, release: None, ended: false };
        for_work.db.operator().import_tenant(&mut reader, new_name.as_ref(), tier, &mut |_| {})
    });
    let fed = feed(&mut stream, &tx, timing.deadline, timing.budget).await;
    // Without `End`, a closed channel fails the reader: an import that has not read its archive's
    // end gives up, and one that has commits (its outcome below is the answer).
    drop(tx);
    let imported = work.await;
    let answer = match (fed, imported) {
        (_, Ok(Ok(summary))) => Ok(pb::ImportTenantResponse {
            tenant: Some(convert::tenant_to(&summary.tenant)),
            archive_id: summary.archive_id,
            rekeyed: summary.rekeyed,
            points: summary.progress.points,
            records: summary.progress.records,
            index_records: summary.index_records,
            bytes: summary.progress.bytes,
        }),
        (Err(status), _) => Err(status),
        (Ok(()), Ok(Err(e))) => Err(status::from_storage(e)),
        (Ok(()), Err(join)) => Err(status::internal(&join)),
    };
    let outcome = answer.as_ref().map_or_else(|s| status::reason_code(s.code()), |_| "ok");
    shared.count_admin(OPERATION, outcome, timing);
    answer.map(Response::new)
}
