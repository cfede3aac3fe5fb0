//! Fuzzes the reference server's request parser: any bytes a client sends must parse or be
//! refused, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(frame) = wsbench::protocol::parse_inbound(&text) {
        let _ = frame.session_id.as_deref().map(wsbench::protocol::valid_session_id);
    }
});
