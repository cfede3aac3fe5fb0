//! Fuzzes the client's frame classifier: any bytes a server sends must classify, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let c = wsbench::protocol::classify(&text);
    assert!(!(c.kind.is_final() && c.kind.is_non_final()));
});
