//! The server's connections: [`Incoming`] accepts a connection only while fewer than the cap are
//! open (`ServerLimits::max_connections`); at the cap it stops accepting, and further clients wait
//! in the kernel's listen backlog until a connection closes. Each accepted [`Connection`] holds
//! its permit until it is dropped, and is closed if it has not sent
//! [`limits::CONNECTION_PREFACE_BYTES`] within [`limits::CONNECTION_HANDSHAKE_TIMEOUT`] of being
//! accepted (silent or dribbling connections would otherwise hold permits for ever; over TLS, tonic's
//! handshake timeout, set to the same, covers the rest of the handshake; after it, HTTP/2 keepalive
//! reaps peers that stop answering).

use crate::limits;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::transport::server::Connected;

/// How long accepting pauses after an error that is not the peer's (out of file descriptors or
/// memory), so that the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

type Acquiring = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The stream of accepted connections, at most `cap` open at once.
pub(crate) struct Incoming {
    listener: TcpListener,
    permits: Arc<Semaphore>,
    permit: Option<OwnedSemaphorePermit>,
    acquiring: Option<Acquiring>,
    backoff: Option<Pin<Box<Sleep>>>,
}

impl Incoming {
    pub(crate) fn new(listener: TcpListener, cap: usize) -> Incoming {
        Incoming {
            listener,
            permits: Arc::new(Semaphore::new(cap.clamp(1, Semaphore::MAX_PERMITS))),
            permit: None,
            acquiring: None,
            backoff: None,
        }
    }
}

impl tokio_stream::Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(backoff) = &mut this.backoff {
                if backoff.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.backoff = None;
            }
            // A free permit first: at the cap, nothing is accepted.
            if this.permit.is_none() {
                let permits = &this.permits;
                let acquiring =
                    this.acquiring.get_or_insert_with(|| Box::pin(Arc::clone(permits).acquire_owned()));
                match acquiring.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(_closed)) => return Poll::Ready(None),
                    Poll::Ready(Ok(permit)) => {
                        this.acquiring = None;
                        this.permit = Some(permit);
                    }
                }
            }
            match this.listener.poll_accept(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok((stream, _peer))) => {
                    // Without TCP_NODELAY, a small response waits for the client's delayed ACK:
                    // about 40 ms per call on Linux (measured: 23 queries/s from one client).
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY on a connection");
                    }
                    let Some(permit) = this.permit.take() else { continue };
                    return Poll::Ready(Some(Ok(Connection::new(stream, permit))));
                }
                // The peer gave up before it was accepted: nothing to do.
                Poll::Ready(Err(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                            | io::ErrorKind::Interrupted
                            | io::ErrorKind::WouldBlock
                    ) => {}
                // Out of file descriptors or memory: tonic would stop serving on this error, so it
                // is not passed on; accepting pauses instead.
                Poll::Ready(Err(e)) => {
                    tracing::warn!(error = %e, "accepting a connection failed; pausing accepts briefly");
                    this.backoff = Some(Box::pin(tokio::time::sleep(ACCEPT_BACKOFF)));
                }
            }
        }
    }
}

/// An accepted connection, holding its permit until it is dropped.
pub(crate) struct Connection {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Refusals held on this connection now (`quota.rs`, `TenantLimits::hold_refusal`).
    held_refusals: Arc<AtomicUsize>,
    /// Until the preface has arrived: when the connection is closed if it has not.
    preface_due: Option<Pin<Box<Sleep>>>,
    /// Bytes read so far, counted up to the preface's length.
    read: usize,
}

impl Connection {
    fn new(stream: TcpStream, permit: OwnedSemaphorePermit) -> Connection {
        let preface_due = Some(Box::pin(tokio::time::sleep(limits::CONNECTION_HANDSHAKE_TIMEOUT)));
        Connection { stream, _permit: permit, preface_due, read: 0, held_refusals: Arc::default() }
    }
}

/// What each call learns of its connection (in the request's extensions, wrapped in tonic's
/// `TlsConnectInfo` over TLS).
#[derive(Debug, Clone)]
pub(crate) struct ConnectionInfo {
    /// Refusals held on the connection now: bounded per connection, so that one tenant's held
    /// refusals never take the stream slots of the other calls a connection carries.
    pub(crate) held_refusals: Arc<AtomicUsize>,
}

impl Connected for Connection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> ConnectionInfo {
        ConnectionInfo { held_refusals: Arc::clone(&self.held_refusals) }
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.preface_due.is_some() {
                    this.read += buf.filled().len() - before;
                    if this.read >= limits::CONNECTION_PREFACE_BYTES {
                        this.preface_due = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let overdue =
                    this.preface_due.as_mut().is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
                if overdue {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no connection preface within CONNECTION_HANDSHAKE_TIMEOUT",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
