//! Fault injection applied to one call's reply: dropped, turned into an error (with or without
//! a request id), preceded by ack/progress/malformed frames, streamed, corrupted, sent twice, or
//! delayed. The handler builds the honest reply; this is everything a healthy server would not do.

use std::time::Instant;

use super::replies::{conn_error_frame, error_frame, ok_frame};
use super::{Connection, Counted, Outgoing};
use crate::protocol::mcp;
use crate::serve::stats::{Fault, Reply};

impl Connection {
    /// Applies this call's injected faults to its reply: drop it, turn it into an error, add
    /// ack/progress/malformed frames before it, stream it, or send it twice.
    pub(super) fn inject(&mut self, mut out: Outgoing, id: &str) -> Option<Outgoing> {
        let config = &self.shared.faults.config;
        let dialect = self.shared.config.protocol;
        let mcp = dialect.is_mcp();
        let f = self.faults.on_call(config);
        let echo_args = self.echo_args.take();
        self.disconnect |= f.disconnect;
        self.frozen |= f.freeze;
        if out.is_replay() {
            return Some(out);
        }
        if f.drop {
            self.shared.stats.injected(Fault::Dropped);
            return None;
        }
        if config.first_call_stall && self.faults.calls == 1 {
            // Hangs: the session's first call is never answered; later ones are.
            self.shared.stats.injected(Fault::FirstCallStall);
            return None;
        }
        // The id as a JSON string, built once and only when an injected frame carries it: with no
        // faults configured a call costs nothing here.
        // (MCP ids are JSON text already.)
        let quoted = if mcp {
            id.to_owned()
        } else if config.stream > 0
            || config.stream_complete
            || config.ack
            || config.progress
            || f.malformed
        {
            serde_json::to_string(id).unwrap_or_default()
        } else {
            String::new()
        };
        if let Some(args) = echo_args {
            // Every echo leaves its arguments for the next; a drawn one takes another
            // session's instead of its own (still a well-formed success for its own id).
            let other = self.shared.faults.swap_echo(self.faults.serial, &args);
            if f.mix_sessions
                && let Some(other) = other
                && let Some((text, Counted::Reply(Reply::Ok))) = out.frames.last_mut()
            {
                *text = ok_frame(dialect, id, &other).into();
                self.shared.stats.injected(Fault::MixedSessions);
            }
        }
        if f.diverge
            && let Some((text, Counted::Reply(Reply::Ok))) = out.frames.last_mut()
        {
            // A well-formed success whose text is not what the same call gets elsewhere.
            let n = self.faults.calls;
            *text = ok_frame(dialect, id, &format!(r#"{{"diverged":{n}}}"#)).into();
            self.shared.stats.injected(Fault::Diverged);
        }
        if f.corrupt
            && let Some((text, Counted::Reply(Reply::Ok))) = out.frames.last_mut()
        {
            // Still a well-formed success; only the content is wrong, as a buggy tool's would be.
            *text = ok_frame(dialect, id, r#"{"corrupted":true}"#).into();
            self.shared.stats.injected(Fault::Corrupted);
        }
        if f.uncorrelated {
            // The field daemon's rate limiter: an error about the connection, not the call.
            let frame = if mcp {
                conn_error_frame(dialect, "OVER_CAPACITY", "Rate limit exceeded: injected")
            } else {
                r#"{"op":"error","error":{"code":"OVER_CAPACITY","message":"Rate limit exceeded: injected","details":{}}}"#.to_owned()
            };
            self.shared.stats.injected(Fault::Uncorrelated);
            return Some(Outgoing::one(
                frame.into(),
                Counted::ReplyError("OVER_CAPACITY".into()),
            ));
        }
        if f.error {
            let reply = if mcp && config.rpc_errors {
                mcp::error_response(Some(id), mcp::INTERNAL_ERROR, "OVER_CAPACITY: injected")
            } else if mcp {
                error_frame(dialect, id, "OVER_CAPACITY", "injected")
            } else {
                serde_json::json!({
                    "op": "call_tool_res",
                    "request_id": id,
                    "error": {"code": "OVER_CAPACITY", "message": "injected", "retry_after": config.retry_after_s},
                })
                .to_string()
            };
            out = Outgoing::one(reply.into(), Counted::ReplyError("OVER_CAPACITY".into()));
            self.shared.stats.injected(Fault::Error);
        } else if !mcp
            && (config.stream > 0 || config.stream_complete)
            && let Some((_, Counted::Reply(Reply::Ok))) = out.frames.last()
        {
            // Chunks, then the stream's end, then the result: the field daemon's order.
            let last = out.frames.pop().expect("checked above");
            for i in 0..config.stream {
                let chunk =
                    format!(r#"{{"op":"stream_chunk","request_id":{quoted},"chunk":"part {i}"}}"#);
                out.frames
                    .push((chunk.into(), Counted::Injected(Fault::NonFinal)));
            }
            let done = format!(
                r#"{{"op":"stream_complete","request_id":{quoted},"metadata":{{"chunks":{}}}}}"#,
                config.stream
            );
            out.frames
                .push((done.into(), Counted::Injected(Fault::NonFinal)));
            out.frames.push(last);
        }
        let mut before = Vec::new();
        if config.ack && !mcp {
            let ack = format!(
                r#"{{"op":"call_tool_ack","request_id":{quoted},"accepted":true,"timeout":300}}"#
            );
            before.push((ack.into(), Counted::Injected(Fault::NonFinal)));
        }
        if config.progress {
            let p = if mcp {
                mcp::progress(&quoted, 1)
            } else {
                format!(r#"{{"op":"progress","request_id":{quoted},"note":"accepted"}}"#)
            };
            before.push((p.into(), Counted::Injected(Fault::NonFinal)));
        }
        if f.malformed {
            let bad = if mcp {
                format!(r#"{{"jsonrpc":"2.0","id":{quoted},"resu"#)
            } else {
                format!(r#"{{"op":"call_tool_res","request_id":{quoted},"outp"#)
            };
            before.push((bad.into(), Counted::Injected(Fault::Malformed)));
        }
        if f.duplicate
            && let Some((last, _)) = out.frames.last()
        {
            let again = last.clone();
            out.frames
                .push((again, Counted::Injected(Fault::Duplicate)));
        }
        if !before.is_empty() {
            before.append(&mut out.frames);
            out.frames = before;
        }
        Some(out)
    }

    /// Holds a tool reply back for the configured delay (replays come from cache at once).
    pub(super) fn maybe_delay(&mut self, out: Outgoing, tool: &str) -> Option<Outgoing> {
        let config = &self.shared.faults.config;
        if !config.delays_replies() || out.is_replay() {
            return Some(out);
        }
        let work = self.faults.reply_delay(config, tool);
        let now = Instant::now();
        let due = if config.in_order {
            // One call after another: this one starts when the previous reply is out, and
            // its reply never overtakes that one.
            let start = self.last_due.map_or(now, |last| last.max(now));
            let due = self.shared.faults.finish_time(start, work);
            let due = self.last_due.map_or(due, |last| {
                due.max(last + std::time::Duration::from_micros(1))
            });
            self.last_due = Some(due);
            due
        } else {
            self.shared.faults.finish_time(now, work)
        };
        self.shared
            .faults
            .deliver_at(due, self.delayed_tx.clone(), out);
        None
    }
}
