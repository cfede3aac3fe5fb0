//! The reference server's deduplication (PROTOCOL.md section 4): a bounded result cache keyed
//! by `request_id`, and the set of in-flight call contents that makes identical concurrent
//! calls answer `DUPLICATE`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Results by request id, bounded by keeping two generations: when the young one fills, the
/// old one is dropped whole. Cheaper than an LRU and just as good for "recent ids replay".
#[derive(Debug)]
pub struct ReplayCache {
    inner: Mutex<Generations>,
    generation_size: usize,
}

#[derive(Debug, Default)]
struct Generations {
    young: HashMap<Box<str>, Utf8Bytes>,
    old: HashMap<Box<str>, Utf8Bytes>,
}

impl ReplayCache {
    /// Keeps at least `capacity / 2` and at most `capacity` recent results.
    pub fn new(capacity: usize) -> Self {
        ReplayCache {
            inner: Mutex::default(),
            generation_size: (capacity / 2).max(1),
        }
    }

    /// The cached reply for `request_id`, if it was answered recently.
    pub fn get(&self, request_id: &str) -> Option<Utf8Bytes> {
        let g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.young
            .get(request_id)
            .or_else(|| g.old.get(request_id))
            .cloned()
    }

    pub fn insert(&self, request_id: &str, reply: Utf8Bytes) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.young.len() >= self.generation_size {
            g.old = std::mem::take(&mut g.young);
        }
        g.young.insert(request_id.into(), reply);
    }
}

/// Contents (`name` + `arguments`) and ids of calls still being worked on.
#[derive(Debug, Default)]
pub struct InFlight {
    inner: Mutex<HashMap<String, String>>,
    ids: Mutex<HashSet<String>>,
}

impl InFlight {
    /// Registers a call; on a clash returns the request id of the call already in flight.
    pub fn begin(&self, request_id: &str, content: &str) -> Result<(), String> {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        if ids.contains(request_id) {
            return Err(request_id.to_owned());
        }
        let mut map = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(original) = map.get(content) {
            return Err(original.clone());
        }
        map.insert(content.to_owned(), request_id.to_owned());
        ids.insert(request_id.to_owned());
        Ok(())
    }

    pub fn end(&self, request_id: &str, content: &str) {
        let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
        ids.remove(request_id);
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(content);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_recent_results_and_stays_bounded() {
        let c = ReplayCache::new(4);
        for i in 0..10 {
            c.insert(&format!("r{i}"), Utf8Bytes::from(format!("v{i}")));
        }
        assert_eq!(c.get("r9").as_deref(), Some("v9"));
        assert_eq!(c.get("r8").as_deref(), Some("v8"));
        assert!(c.get("r0").is_none());
    }

    #[test]
    fn identical_calls_in_flight_clash() {
        let f = InFlight::default();
        assert!(f.begin("a", "sleep\0{}").is_ok());
        assert_eq!(f.begin("b", "sleep\0{}"), Err("a".to_owned()));
        assert_eq!(f.begin("a", "sleep\0{\"x\":1}"), Err("a".to_owned()));
        f.end("a", "sleep\0{}");
        assert!(f.begin("b", "sleep\0{}").is_ok());
    }
}
