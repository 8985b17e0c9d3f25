//! What a request body may cost as it arrives: [`LimitedBody`] reads each gRPC message's 5-byte
//! prefix as the bytes stream past, refuses a message whose declared length is over its method's
//! limit (`limits::request_message_limit`) before the rest of it is read, and reserves its share
//! of the server-wide request memory budget ([`RequestBudget`]) before tonic buffers it. The
//! codec (`codec.rs`) adds the reservation for the message's counted elements through
//! [`reserve_elements`]. A call's reservations ([`CallBudget`]) are returned when its handler is
//! done with the decoded message (its storage work included, which may outlast the deadline).
//! A client-streaming call (`limits::CLIENT_STREAMING_METHODS`: a tenant archive's chunks) gets
//! each message's reservations, wire and elements, under the message's number, and returns them
//! message by message as its handler is done with each ([`MessageRelease`]), so that a stream of
//! any length holds only the messages in flight.
//! An admitted call's body must also arrive within the call's
//! deadline (`DEADLINE_EXCEEDED` otherwise), so a client that stops sending mid-message holds its
//! stream and its reservation no longer than that.
//!
//! Waiting for the budget: a message that does not fit waits for room, within its call's
//! deadline, and is refused with `RESOURCE_EXHAUSTED` naming the budget if none comes. Waiting
//! (rather than refusing at once) serves a burst of large upserts in turn instead of failing
//! most of it, and costs little while it lasts: the waiting call's body is not read, so HTTP/2
//! flow control holds its sender to one stream window (`limits::HTTP2_STREAM_WINDOW_BYTES`) of
//! buffered bytes. Answering
//! `RESOURCE_EXHAUSTED` at the deadline (rather than `DEADLINE_EXCEEDED`) tells the client that
//! the server was short of memory, not slow. The codec's reservation cannot wait (decoding is
//! synchronous): when the budget is full at that moment, the call is refused at once.

use crate::limits::MessageLimit;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tonic::Status;

/// The server-wide budget of request memory, in bytes.
#[derive(Debug)]
pub(crate) struct RequestBudget {
    bytes: Arc<Semaphore>,
    total: usize,
}

impl RequestBudget {
    pub(crate) fn new(total: usize) -> RequestBudget {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        RequestBudget { bytes: Arc::new(Semaphore::new(total)), total }
    }

    /// Bytes not reserved right now.
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }

    fn exhausted(&self, why: &str) -> Status {
        Status::resource_exhausted(format!(
            "{why}: the server's request memory budget of {} bytes (REQUEST_MEMORY_BUDGET_BYTES, \
             docs/LIMITS.md) is in use by other calls; retry later",
            self.total
        ))
    }

    fn larger_than_budget(&self, needed: usize) -> Status {
        Status::resource_exhausted(format!(
            "the request needs {needed} bytes of request memory, more than the server's whole budget of \
             {} bytes (REQUEST_MEMORY_BUDGET_BYTES, docs/LIMITS.md); send smaller requests",
            self.total
        ))
    }
}

/// A reservation being waited for.
type Reserving = Pin<Box<dyn Future<Output = Result<(), Status>> + Send>>;

/// One call's reservations, held until the call's handler is done with its message.
#[derive(Debug)]
pub(crate) struct CallBudget {
    budget: Arc<RequestBudget>,
    deadline: Instant,
    /// The length of the call's deadline, for the refusal's message.
    allowed: Duration,
    /// Each reservation with the number (from 1) of the request message it is for.
    held: Mutex<Vec<(usize, OwnedSemaphorePermit)>>,
    /// Request messages decoded so far (by the codec, in order).
    decoded: AtomicUsize,
}

impl CallBudget {
    pub(crate) fn new(budget: Arc<RequestBudget>, deadline: Instant, allowed: Duration) -> CallBudget {
        CallBudget { budget, deadline, allowed, held: Mutex::new(Vec::new()), decoded: AtomicUsize::new(0) }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Vec<(usize, OwnedSemaphorePermit)>> {
        // A poisoned lock only means another holder panicked; the permits are still ours to keep.
        self.held.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn keep(&self, message: usize, permit: OwnedSemaphorePermit) {
        self.held().push((message, permit));
    }

    /// Reserves `bytes` for request message `message` now, or refuses.
    fn try_reserve(&self, message: usize, bytes: usize) -> Result<(), Status> {
        if bytes == 0 {
            return Ok(());
        }
        let n = self.permits(bytes)?;
        match Arc::clone(&self.budget.bytes).try_acquire_many_owned(n) {
            Ok(permit) => {
                self.keep(message, permit);
                Ok(())
            }
            Err(_) => Err(self.budget.exhausted("the request's decoded elements do not fit")),
        }
    }

    fn permits(&self, bytes: usize) -> Result<u32, Status> {
        u32::try_from(bytes)
            .ok()
            .filter(|&n| n as usize <= self.budget.total)
            .ok_or_else(|| self.budget.larger_than_budget(bytes))
    }

    /// A future that reserves `bytes` for request message `message`, waiting for room until the
    /// call's deadline.
    fn reserve(self: &Arc<Self>, message: usize, bytes: usize) -> Reserving {
        let call = Arc::clone(self);
        Box::pin(async move {
            let n = call.permits(bytes)?;
            let waited =
                tokio::time::timeout_at(call.deadline, Arc::clone(&call.budget.bytes).acquire_many_owned(n));
            match waited.await {
                Ok(Ok(permit)) => {
                    call.keep(message, permit);
                    Ok(())
                }
                Ok(Err(_closed)) => Err(Status::unavailable("the server is shutting down")),
                Err(_elapsed) => Err(call.budget.exhausted("no room for the request before its deadline")),
            }
        })
    }
}

tokio::task_local! {
    /// The call whose request the codec is decoding; set by the admission layer around the
    /// services' futures.
    pub(crate) static CALL: Arc<CallBudget>;
}

/// Reserves `bytes` for the decoded elements of the request being decoded (called by the codec).
/// Fails closed: a request decoded outside an admitted call is refused.
pub(crate) fn reserve_elements(bytes: usize) -> Result<(), Status> {
    CALL.try_with(|call| {
        let message = call.decoded.fetch_add(1, Ordering::Relaxed) + 1;
        call.try_reserve(message, bytes)
    })
    .unwrap_or_else(|_| {
        tracing::error!("a request was decoded outside an admitted call");
        Err(Status::internal("internal error (see the server log)"))
    })
}

/// Returns, when dropped, the reservations of every request message of its call decoded when it
/// was made (the message a client-streaming handler just received, and those before it). The
/// handler hands it over with the message's contents and drops it once they are consumed.
#[derive(Debug)]
pub(crate) struct MessageRelease {
    call: Arc<CallBudget>,
    through: usize,
}

impl Drop for MessageRelease {
    fn drop(&mut self) {
        self.call.held().retain(|(message, _)| *message > self.through);
    }
}

/// The [`MessageRelease`] of the message the current call decoded last; `None` outside a call.
pub(crate) fn release_decoded() -> Option<MessageRelease> {
    CALL.try_with(|call| MessageRelease {
        call: Arc::clone(call),
        through: call.decoded.load(Ordering::Relaxed),
    })
    .ok()
}

/// Where the scan of the body is within the gRPC framing.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// Reading a 5-byte prefix: the bytes seen so far.
    Prefix { bytes: [u8; 5], have: usize },
    /// Inside a message: the bytes still to come.
    Message { remaining: usize },
}

/// A request body that enforces its method's message limit and the call's budget as it arrives.
/// Frames pass through unchanged; a refusal is the body's error (a boxed [`Status`], which tonic
/// hands back to the client as it is: `Status::from_error` downcasts it).
pub(crate) struct LimitedBody {
    inner: tonic::body::Body,
    limit: MessageLimit,
    /// The call's budget; `None` for calls outside it (reflection), which are only size-limited.
    call: Option<Arc<CallBudget>>,
    /// Whether the method is unary: its body holds exactly one message.
    unary: bool,
    framing: Framing,
    messages: usize,
    /// A frame held back while its message's reservation is waited for, and where its scan stopped.
    held: Option<(Bytes, usize)>,
    waiting: Option<Reserving>,
    /// When the body must have arrived (admitted calls only).
    due: Option<Pin<Box<Sleep>>>,
}

impl LimitedBody {
    pub(crate) fn new(
        inner: tonic::body::Body,
        limit: MessageLimit,
        call: Option<Arc<CallBudget>>,
        unary: bool,
    ) -> LimitedBody {
        let due = call.as_ref().map(|c| Box::pin(tokio::time::sleep_until(c.deadline)));
        LimitedBody {
            inner,
            limit,
            call,
            unary,
            framing: Framing::Prefix { bytes: [0; 5], have: 0 },
            messages: 0,
            held: None,
            waiting: None,
            due,
        }
    }

    /// Scans `data` from `at`: `Ok(None)` when the whole chunk was scanned, `Ok(Some(stop))` when a
    /// message's reservation must be waited for before the scan goes on at `stop`.
    fn scan(&mut self, data: &[u8], mut at: usize) -> Result<Option<usize>, Status> {
        while at < data.len() {
            match &mut self.framing {
                Framing::Message { remaining } => {
                    let step = (*remaining).min(data.len() - at);
                    *remaining -= step;
                    at += step;
                    if *remaining == 0 {
                        self.framing = Framing::Prefix { bytes: [0; 5], have: 0 };
                    }
                }
                Framing::Prefix { bytes, have } => {
                    let step = (5 - *have).min(data.len() - at);
                    bytes[*have..*have + step].copy_from_slice(&data[at..at + step]);
                    *have += step;
                    at += step;
                    if *have < 5 {
                        continue;
                    }
                    let len = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]) as usize;
                    self.messages += 1;
                    if self.unary && self.messages > 1 {
                        return Err(Status::invalid_argument(
                            "invalid request: a unary call carries exactly one message",
                        ));
                    }
                    if len > self.limit.bytes {
                        return Err(Status::resource_exhausted(format!(
                            "message of {len} bytes is larger than this method's limit of {} bytes ({}, \
                             docs/LIMITS.md)",
                            self.limit.bytes, self.limit.name
                        )));
                    }
                    self.framing = if len == 0 {
                        Framing::Prefix { bytes: [0; 5], have: 0 }
                    } else {
                        Framing::Message { remaining: len }
                    };
                    if let Some(call) = &self.call {
                        let reservation = crate::limits::wire_reservation(len);
                        if reservation > 0 && call.try_reserve(self.messages, reservation).is_err() {
                            self.waiting = Some(call.reserve(self.messages, reservation));
                            return Ok(Some(at));
                        }
                    }
                }
            }
        }
        Ok(None)
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some(waiting) = &mut this.waiting {
                match waiting.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(status)) => {
                        this.waiting = None;
                        this.held = None;
                        return Poll::Ready(Some(Err(status)));
                    }
                    Poll::Ready(Ok(())) => this.waiting = None,
                }
            }
            if let Some((data, at)) = this.held.take() {
                match this.scan(&data, at) {
                    Err(status) => return Poll::Ready(Some(Err(status))),
                    Ok(Some(stop)) => {
                        this.held = Some((data, stop));
                        continue;
                    }
                    Ok(None) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                }
            }
            let frame = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    let overdue = this.due.as_mut().is_some_and(|due| due.as_mut().poll(cx).is_ready());
                    if let (true, Some(call)) = (overdue, &this.call) {
                        this.due = None;
                        return Poll::Ready(Some(Err(crate::status::deadline_exceeded(call.allowed))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Some(Err(status))),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            let data = match frame.into_data() {
                Ok(data) => data,
                // Trailers pass through.
                Err(frame) => return Poll::Ready(Some(Ok(frame))),
            };
            match this.scan(&data, 0) {
                Err(status) => return Poll::Ready(Some(Err(status))),
                Ok(Some(stop)) => this.held = Some((data, stop)),
                Ok(None) => return Poll::Ready(Some(Ok(Frame::data(data)))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
