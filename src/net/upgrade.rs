//! A WebSocket upgrade whose connection keeps a read buffer of the size asked for.
//!
//! tungstenite reads the HTTP head into a 4 KiB buffer and hands that same allocation on as the
//! connection's read buffer (`from_partially_read` reuses the `Vec`), so `read_buffer_size`
//! never takes effect after a handshake: every idle connection keeps 4 KiB. At 100,000
//! connections that is 400 MB on each side. [`HeadOnly`] lets the handshake read no further than
//! the end of the head (a blank line), keeping any bytes past it; [`rebuffer`] then rebuilds the
//! connection around the bare stream with those bytes and the configured buffer.
//!
//! It also gathers the head whole before handing any of it over: tungstenite's handshake
//! counts the reads it takes and calls a head that arrives a byte or two per TCP segment an
//! attack ("Attack attempt detected"), although such a peer is only slow; how slow is for the
//! connect timeout around the handshake to judge.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// A stream that gathers an HTTP head whole before its reader sees any of it, and then hands
/// its reader nothing past the head's end; what came after waits in `tail`.
#[derive(Debug)]
pub struct HeadOnly<S> {
    inner: S,
    /// How much of "\r\n\r\n" the bytes read so far end with (4: the head is complete).
    matched: u8,
    /// The head as read so far (handed out from `handed` on once it is whole).
    head: Vec<u8>,
    handed: usize,
    /// The peer ended the stream before the head did: what there is goes out, then the end.
    eof: bool,
    /// Bytes read past the head, not yet handed out.
    tail: Vec<u8>,
}

/// A head this long is handed over unfinished (the handshake refuses one over 64 KiB).
const MAX_HEAD: usize = 64 << 10;

impl<S> HeadOnly<S> {
    pub fn new(inner: S) -> Self {
        HeadOnly {
            inner,
            matched: 0,
            head: Vec::new(),
            handed: 0,
            eof: false,
            tail: Vec::new(),
        }
    }

    /// The stream, and the bytes read past the head that nobody has taken yet.
    pub fn into_parts(self) -> (S, Vec<u8>) {
        (self.inner, self.tail)
    }

    fn head_done(&self) -> bool {
        self.matched == 4
    }

    /// Advances the "\r\n\r\n" match over `bytes`; the length of the prefix that belongs to the
    /// head (all of it while the head is not complete).
    fn scan(&mut self, bytes: &[u8]) -> usize {
        const END: &[u8; 4] = b"\r\n\r\n";
        for (i, &b) in bytes.iter().enumerate() {
            self.matched = if b == END[usize::from(self.matched)] {
                self.matched + 1
            } else if b == b'\r' {
                1
            } else {
                0
            };
            if self.head_done() {
                return i + 1;
            }
        }
        bytes.len()
    }
}

impl<S: AsyncRead + Unpin> HeadOnly<S> {
    /// Reads until the head is whole, the stream ends or the head is too long; `Pending` while
    /// the peer has sent no more (the inner stream then wakes us).
    fn gather(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut chunk = [0u8; 1024];
        while !self.head_done() && !self.eof && self.head.len() < MAX_HEAD {
            let mut rb = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb))?;
            let fresh = rb.filled();
            if fresh.is_empty() {
                self.eof = true;
                break;
            }
            let head = self.scan(fresh);
            self.head.extend_from_slice(&fresh[..head]);
            self.tail.extend_from_slice(&fresh[head..]);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadOnly<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        std::task::ready!(this.gather(cx))?;
        // The head first, in as few reads as the reader's buffer allows...
        if this.handed < this.head.len() {
            let n = (this.head.len() - this.handed).min(buf.remaining());
            buf.put_slice(&this.head[this.handed..this.handed + n]);
            this.handed += n;
            return Poll::Ready(Ok(()));
        }
        if !this.head_done() {
            // Ended (or too long) before the head did: the reader sees the end.
            return Poll::Ready(Ok(()));
        }
        // ...then whatever was read past it, then the stream itself.
        if !this.tail.is_empty() {
            let n = this.tail.len().min(buf.remaining());
            buf.put_slice(&this.tail[..n]);
            this.tail.drain(..n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadOnly<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The connection of a finished handshake, rebuilt around the bare stream: the bytes that came
/// after the head are read first, and the read buffer is the one `config` asks for. Nothing is
/// lost: the handshake read no further than the head, and wrote everything it had to write.
pub async fn rebuffer<S>(
    ws: WebSocketStream<HeadOnly<S>>,
    role: Role,
    config: WebSocketConfig,
) -> WebSocketStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (stream, tail) = ws.into_inner().into_parts();
    WebSocketStream::from_partially_read(stream, tail, role, Some(config)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[test]
    fn the_head_ends_at_the_first_blank_line_across_reads() {
        let mut h = HeadOnly::new(());
        assert_eq!(h.scan(b"HTTP/1.1 101 OK\r\nA: b\r"), 22);
        assert!(!h.head_done());
        assert_eq!(h.scan(b"\n\r"), 2);
        assert_eq!(h.scan(b"\nframe"), 1);
        assert!(h.head_done());
        let mut h = HeadOnly::new(());
        assert_eq!(h.scan(b"a\r\r\n\r\nz"), 6, "a stray CR restarts the match");
    }

    #[tokio::test]
    async fn bytes_past_the_head_are_kept_and_read_first() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"GET / HTTP/1.1\r\nX: y\r\n\r\nafter")
            .await
            .unwrap();
        drop(a);
        let mut h = HeadOnly::new(b);
        let mut head = vec![0u8; 4096];
        let mut got = 0;
        while !h.head_done() {
            got += h.read(&mut head[got..]).await.unwrap();
        }
        assert_eq!(&head[..got], b"GET / HTTP/1.1\r\nX: y\r\n\r\n");
        let mut rest = Vec::new();
        h.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"after");
    }

    /// A server whose 101 arrives one byte per TCP segment: slow, not an attack. The upgrade
    /// succeeds (tungstenite alone refuses it after 64 small reads).
    #[tokio::test]
    async fn an_upgrade_answer_a_byte_a_segment_is_accepted() {
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            tcp.set_nodelay(true).unwrap();
            let mut req = Vec::new();
            let mut byte = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") {
                tcp.read_exact(&mut byte).await.unwrap();
                req.push(byte[0]);
            }
            let req = String::from_utf8(req).unwrap();
            // The header's name may come in any case; its value is taken as written.
            let key = req
                .lines()
                .find(|l| l.to_ascii_lowercase().starts_with("sec-websocket-key:"))
                .map(|l| l[18..].trim().to_owned())
                .unwrap();
            let answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\nServer: a-slow-one\r\n\r\n",
                derive_accept_key(key.as_bytes())
            );
            for b in answer.as_bytes() {
                tcp.write_all(&[*b]).await.unwrap();
                tcp.flush().await.unwrap();
                tokio::time::sleep(std::time::Duration::from_micros(200)).await;
            }
            tcp
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let got = tokio_tungstenite::client_async_with_config(
            format!("ws://{addr}/"),
            HeadOnly::new(tcp),
            None,
        )
        .await;
        assert!(got.is_ok(), "{:?}", got.err());
        drop(server.await.unwrap());
    }

    /// A server that answers the upgrade and sends a frame in the same write: the frame must
    /// reach the rebuilt connection, which reads with the small buffer it was configured with.
    #[tokio::test]
    async fn a_frame_sent_with_the_upgrade_answer_is_not_lost() {
        use futures_util::StreamExt as _;
        use tokio_tungstenite::tungstenite::Message;
        use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut byte = [0u8; 1];
            while !req.ends_with(b"\r\n\r\n") {
                tcp.read_exact(&mut byte).await.unwrap();
                req.push(byte[0]);
            }
            let req = String::from_utf8(req).unwrap();
            let key = req
                .lines()
                .find_map(|l| {
                    l.strip_prefix("Sec-WebSocket-Key: ")
                        .or(l.strip_prefix("sec-websocket-key: "))
                })
                .unwrap()
                .trim();
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {}\r\n\r\n",
                derive_accept_key(key.as_bytes())
            )
            .into_bytes();
            // An unmasked text frame "early", then one larger than the 64-byte buffer.
            answer.extend_from_slice(&[0x81, 5]);
            answer.extend_from_slice(b"early");
            answer.extend_from_slice(&[0x81, 126, 0, 200]);
            answer.extend_from_slice(&[b'x'; 200]);
            tcp.write_all(&answer).await.unwrap();
            tcp
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let config = WebSocketConfig::default().read_buffer_size(64);
        let (ws, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{addr}/"),
            HeadOnly::new(tcp),
            Some(config),
        )
        .await
        .unwrap();
        let mut ws = rebuffer(ws, Role::Client, config).await;
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("early"));
        assert_eq!(
            ws.next().await.unwrap().unwrap(),
            Message::text("x".repeat(200))
        );
        drop(server.await.unwrap());
    }
}
