//! The stdio transport: newline-delimited JSON messages over a pair of pipes (a spawned server's
//! stdin and stdout, or the reference server's own), presented as a stream and sink of text
//! messages like a WebSocket's, so the same connection code drives both.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_util::codec::{FramedRead, FramedWrite, LinesCodec, LinesCodecError};

/// Lines in, lines out; a `Close` message closes the writing side (the peer reads EOF), and
/// the end of the reading side ends the stream. Owns the child, if any: dropping the transport
/// kills it, so no server process outlives its connection.
pub struct Lines<R, W> {
    read: FramedRead<R, LinesCodec>,
    /// Dropped once closed: for a pipe, only closing the descriptor is EOF for the peer.
    write: Option<FramedWrite<W, LinesCodec>>,
    closing: bool,
    child: Option<Child>,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Lines<R, W> {
    /// Messages over `read` and `write`, each at most `max_len` bytes.
    pub fn new(read: R, write: W, max_len: usize) -> Self {
        Lines {
            read: FramedRead::new(read, LinesCodec::new_with_max_length(max_len)),
            write: Some(FramedWrite::new(write, LinesCodec::new())),
            closing: false,
            child: None,
        }
    }
}

/// A spawned server process and its pipes.
pub type ChildLines = Lines<ChildStdout, ChildStdin>;

/// Starts `command` through `sh -c`, its stderr appended to `stderr_log`; messages travel on its
/// stdin and stdout. The process is killed when the transport is dropped.
pub fn spawn(command: &str, stderr_log: &Path, max_len: usize) -> io::Result<ChildLines> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(stderr_log)?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        // Its own process group, so that dropping the transport ends everything `sh` started.
        .process_group(0)
        .spawn()?;
    let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(io::Error::other("the child's pipes were not set up"));
    };
    let mut lines = Lines::new(stdout, stdin, max_len);
    lines.child = Some(child);
    Ok(lines)
}

impl<R, W> Drop for Lines<R, W> {
    fn drop(&mut self) {
        if let Some(pid) = self.child.as_ref().and_then(|c| c.id()) {
            // The whole group: `sh -c 'a; b'` keeps children of its own. (tokio's kill_on_drop
            // then kills the leader too, and reaps it.)
            // SAFETY: signals a process group this transport created.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}

fn io_error(e: LinesCodecError) -> Error {
    match e {
        LinesCodecError::Io(e) => Error::Io(e),
        LinesCodecError::MaxLineLengthExceeded => Error::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "a message over the size limit",
        )),
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Stream for Lines<R, W> {
    type Item = Result<Message, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            return match ready!(Pin::new(&mut self.read).poll_next(cx)) {
                // A blank line is no message (some servers end theirs with \r\n\r\n).
                Some(Ok(line)) if line.trim().is_empty() => continue,
                Some(Ok(line)) => Poll::Ready(Some(Ok(Message::text(line)))),
                Some(Err(e)) => Poll::Ready(Some(Err(io_error(e)))),
                None => Poll::Ready(None),
            };
        }
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Lines<R, W> {
    /// The writing side, or the error a closed one gives.
    fn writer(&mut self) -> Result<Pin<&mut FramedWrite<W, LinesCodec>>, Error> {
        match self.write.as_mut() {
            Some(w) => Ok(Pin::new(w)),
            None => Err(Error::AlreadyClosed),
        }
    }

    /// Flushes and closes the writing side, then drops it (EOF for the peer).
    fn poll_shut(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if let Some(w) = self.write.as_mut() {
            ready!(Sink::<&str>::poll_close(Pin::new(w), cx)).map_err(io_error)?;
            self.write = None;
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Sink<Message> for Lines<R, W> {
    type Error = Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Sink::<&str>::poll_ready(self.writer()?, cx).map_err(io_error)
    }

    fn start_send(mut self: Pin<&mut Self>, msg: Message) -> Result<(), Error> {
        match msg {
            Message::Text(text) => {
                Sink::<&str>::start_send(self.writer()?, text.as_str()).map_err(io_error)
            }
            Message::Close(_) => {
                self.closing = true;
                Ok(())
            }
            // Pipes have no pings or binary frames.
            _ => Ok(()),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        if self.closing {
            return self.poll_shut(cx);
        }
        Sink::<&str>::poll_flush(self.writer()?, cx).map_err(io_error)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.poll_shut(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{SinkExt as _, StreamExt as _};

    use super::*;

    #[tokio::test]
    async fn a_child_is_a_message_stream_and_dies_with_its_transport() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        // `cat` echoes every line; its stderr note lands in the log.
        let mut io = spawn("echo started >&2; cat", &log, 1 << 20).unwrap();
        let pid = io.child.as_ref().and_then(|c| c.id()).unwrap();
        // A grandchild that would ignore EOF: it must die with the transport too.
        let mut stubborn = spawn("sleep 30 & echo $!; cat", &log, 1 << 20).unwrap();
        let grandchild: i32 = stubborn
            .next()
            .await
            .unwrap()
            .unwrap()
            .to_text()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(stubborn);
        io.send(Message::text(r#"{"a":1}"#)).await.unwrap();
        io.send(Message::text(r#"{"b":2}"#)).await.unwrap();
        let first = io.next().await.unwrap().unwrap();
        let second = io.next().await.unwrap().unwrap();
        assert_eq!(
            (first.to_text().unwrap(), second.to_text().unwrap()),
            (r#"{"a":1}"#, r#"{"b":2}"#)
        );
        // Closing our side is EOF for cat, which exits: the stream ends.
        io.send(Message::Close(None)).await.unwrap();
        assert!(io.next().await.is_none());
        assert!(std::fs::read_to_string(&log).unwrap().contains("started"));
        drop(io);
        // Dropped: the child is gone (killed if it had not exited).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let alive = unsafe { libc::kill(pid as i32, 0) } == 0;
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        assert!(!alive || zombie, "the child outlived its transport");
        let gone = |pid: i32| {
            (unsafe { libc::kill(pid, 0) }) != 0
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .map(|s| s.contains(") Z "))
                    .unwrap_or(true)
        };
        assert!(gone(grandchild), "a grandchild outlived its transport");
    }
}
