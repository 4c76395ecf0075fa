//! Which TCP connection fetched an event: a listener whose streams report their closing to the
//! Runtime API, so an event whose process died mid-invocation is noticed (see
//! [`super::ApiState::connection_closed`]).
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::ApiState;

/// The connection a Runtime API request came in on (the listener numbers them).
#[derive(Clone, Copy, Debug)]
pub(super) struct RuntimeConnection {
    pub(super) id: u64,
}

impl Connected<IncomingStream<'_, TrackedListener>> for RuntimeConnection {
    fn connect_info(stream: IncomingStream<'_, TrackedListener>) -> Self {
        *stream.remote_addr()
    }
}

/// A TCP listener that numbers its connections and reports when each one closes.
pub(super) struct TrackedListener {
    inner: TcpListener,
    state: Weak<ApiState>,
}

impl TrackedListener {
    /// Weak: the server task must not keep the API's state alive after the API is dropped.
    pub(super) fn new(inner: TcpListener, state: &Arc<ApiState>) -> TrackedListener {
        TrackedListener {
            inner,
            state: Arc::downgrade(state),
        }
    }
}

impl axum::serve::Listener for TrackedListener {
    type Io = TrackedStream;
    type Addr = RuntimeConnection;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, _)) => {
                    let id = self
                        .state
                        .upgrade()
                        .map(|s| s.next_connection.fetch_add(1, Ordering::SeqCst))
                        .unwrap_or_default();
                    let stream = TrackedStream {
                        stream,
                        id,
                        state: self.state.clone(),
                    };
                    return (stream, RuntimeConnection { id });
                }
                Err(error) => {
                    tracing::warn!(%error, "Runtime API accept failed");
                    // Out of file descriptors and the like: retrying at once would spin.
                    if !matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
                    ) {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        // Only remote ends are numbered; the listener itself is "connection 0".
        Ok(RuntimeConnection { id: 0 })
    }
}

pub(super) struct TrackedStream {
    stream: TcpStream,
    id: u64,
    state: Weak<ApiState>,
}

impl Drop for TrackedStream {
    fn drop(&mut self) {
        if let Some(state) = self.state.upgrade() {
            state.connection_closed(self.id);
        }
    }
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
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
