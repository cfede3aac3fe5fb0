//! Message I/O where writing never stops reading: frames are queued on the transport at once
//! and pushed out as the peer takes them, while the owner keeps polling for incoming frames.
//! Both `run` (client) and `serve` (server) use it, so neither side can deadlock the other by
//! writing into a full socket while nothing reads. A transport is anything that is a stream and
//! a sink of messages ([`MessageIo`]): a WebSocket, or newline-delimited JSON over pipes.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_util::{Sink, Stream, StreamExt as _};
use tokio_tungstenite::tungstenite::{Error, Message};

/// A transport of whole messages both ways: a WebSocket, or lines over a process's pipes.
pub trait MessageIo:
    Stream<Item = Result<Message, Error>> + Sink<Message, Error = Error> + Send + Unpin
{
}

impl<T> MessageIo for T where
    T: Stream<Item = Result<Message, Error>> + Sink<Message, Error = Error> + Send + Unpin
{
}

/// A transport chosen at run time.
pub type BoxIo = Box<dyn MessageIo>;

/// What one turn of [`Duplex::next_io`] brought.
#[derive(Debug)]
pub enum Io {
    /// A frame arrived (or the stream ended: `None`, or failed).
    Frame(Option<Result<Message, Error>>),
    /// Everything queued has reached the socket.
    Flushed,
    /// The socket refused a write: the connection is gone.
    WriteFailed(Error),
}

/// A transport with a write backlog instead of blocking writes.
pub struct Duplex<T> {
    pub ws: T,
    /// Frames queued since the socket last took everything.
    backlog: usize,
    /// Their bytes (payload sizes), to bound how much a peer that does not read can pile up.
    backlog_bytes: usize,
}

impl<T> std::fmt::Debug for Duplex<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Duplex")
            .field("backlog", &self.backlog)
            .field("backlog_bytes", &self.backlog_bytes)
            .finish_non_exhaustive()
    }
}

impl<T: Stream<Item = Result<Message, Error>> + Sink<Message, Error = Error> + Unpin> Duplex<T> {
    pub fn new(ws: T) -> Self {
        Duplex {
            ws,
            backlog: 0,
            backlog_bytes: 0,
        }
    }

    /// Queues a frame without waiting. The frame is accepted even when the socket is full
    /// (tungstenite keeps it in its write buffer); an error means the connection is unusable.
    pub fn queue(&mut self, msg: Message) -> Result<(), Error> {
        self.backlog += 1;
        self.backlog_bytes += msg.len();
        Pin::new(&mut self.ws).start_send(msg)
    }

    /// Frames queued and not yet taken by the socket.
    pub fn backlog(&self) -> usize {
        self.backlog
    }

    /// Bytes queued and not yet taken by the socket.
    pub fn backlog_bytes(&self) -> usize {
        self.backlog_bytes
    }

    /// Pushes the backlog out as far as the socket takes it now, without waiting. True when
    /// nothing is left queued.
    pub fn try_flush(&mut self) -> Result<bool, Error> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.poll_flush(&mut cx) {
            Poll::Ready(r) => r.map(|()| true),
            Poll::Pending => Ok(false),
        }
    }

    /// Like [`Duplex::try_flush`], but also pushes frames tungstenite queued itself (the
    /// answer to the peer's close, a pong) when nothing of ours is waiting.
    pub fn try_flush_all(&mut self) -> Result<bool, Error> {
        self.backlog = self.backlog.max(1);
        self.try_flush()
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.backlog == 0 {
            return Poll::Ready(Ok(()));
        }
        let r = std::task::ready!(Pin::new(&mut self.ws).poll_flush(cx));
        self.backlog = 0;
        self.backlog_bytes = 0;
        Poll::Ready(r)
    }

    /// Makes progress on both directions: pushes the backlog out, and reads the next frame
    /// when `read` is set. Resolves on a frame, on the backlog emptying, or on a write error.
    pub fn poll_io(&mut self, cx: &mut Context<'_>, read: bool) -> Poll<Io> {
        let had_backlog = self.backlog > 0;
        if had_backlog {
            match self.poll_flush(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Io::WriteFailed(e)),
                Poll::Pending => {}
            }
        }
        if read && let Poll::Ready(msg) = self.ws.poll_next_unpin(cx) {
            return Poll::Ready(Io::Frame(msg));
        }
        if had_backlog && self.backlog == 0 {
            Poll::Ready(Io::Flushed)
        } else {
            Poll::Pending
        }
    }

    /// [`Duplex::poll_io`] as a future, for `select!`.
    pub async fn next_io(&mut self, read: bool) -> Io {
        poll_fn(|cx| self.poll_io(cx, read)).await
    }

    /// Sends a close frame and reads until the peer's close (or the end of the stream), every
    /// frame meanwhile handed to `on_frame`; gives up after `limit`, whatever the peer does.
    /// Whether the connection ended within `limit` (false: the peer kept it open).
    pub async fn close(
        &mut self,
        frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>,
        limit: std::time::Duration,
        mut on_frame: impl FnMut(Message),
    ) -> bool {
        let closing = async {
            // Queued like any frame: a peer that does not read cannot hold the close up.
            if self.queue(Message::Close(frame)).is_err() {
                return;
            }
            loop {
                match self.next_io(true).await {
                    Io::Frame(Some(Ok(msg))) => on_frame(msg),
                    Io::Frame(_) | Io::WriteFailed(_) => return,
                    Io::Flushed => {}
                }
            }
        };
        tokio::time::timeout(limit, closing).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt as _;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_tungstenite::WebSocketStream;

    /// A WebSocket pair over a real loopback TCP connection.
    async fn pair() -> (WebSocketStream<TcpStream>, WebSocketStream<TcpStream>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            tokio_tungstenite::accept_async(tcp).await.unwrap()
        });
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, _) = tokio_tungstenite::client_async(format!("ws://{addr}/"), tcp)
            .await
            .unwrap();
        (client, server.await.unwrap())
    }

    #[tokio::test]
    async fn a_frame_is_read_while_writes_wait_for_a_peer_that_does_not_read() {
        let (client, mut server) = pair().await;
        let mut dx = Duplex::new(client);
        // Far more than the socket buffers hold: the peer reads none of it yet.
        let frame = "x".repeat(64 << 10);
        for _ in 0..512 {
            dx.queue(Message::text(frame.as_str())).unwrap();
        }
        assert!(
            !dx.try_flush().unwrap(),
            "32 MiB cannot all be taken at once"
        );
        assert!(dx.backlog_bytes() > 0);
        server.send(Message::text("reply")).await.unwrap();
        let got = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            match dx.next_io(true).await {
                Io::Frame(msg) => msg,
                Io::Flushed => panic!("the peer has not read anything"),
                Io::WriteFailed(e) => panic!("{e}"),
            }
        })
        .await
        .expect("the read did not wait for the writes");
        assert_eq!(got.unwrap().unwrap(), Message::text("reply"));
        // Once the peer reads, the backlog drains and says so.
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while n < 512 {
                if let Some(Ok(Message::Text(_))) = server.next().await {
                    n += 1;
                }
            }
            server
        });
        let flushed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            loop {
                if let Io::Flushed = dx.next_io(false).await {
                    return;
                }
            }
        })
        .await;
        assert!(flushed.is_ok() && dx.backlog() == 0);
        reader.await.unwrap();
    }
}
