//! The reference server's deduplication (PROTOCOL.md section 4): a bounded result cache keyed
//! by `request_id`, and the set of in-flight call contents that makes identical concurrent
//! calls answer `DUPLICATE`.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use tokio_tungstenite::tungstenite::Utf8Bytes;

/// Results by request id: a bounded FIFO per shard, where each insert evicts exactly the oldest
/// entry. Constant work per call, nothing ever freed in bulk: an earlier two-generation design
/// freed a whole generation at once and put 10-40 ms stalls into every connection's latency
/// tail at 100k calls/s.
#[derive(Debug)]
pub struct ReplayCache {
    /// Off (`--cache-size 0`): every call is executed, repeated ids too.
    enabled: bool,
    shards: Vec<Mutex<Ring>>,
}

const SHARDS: usize = 32;

#[derive(Debug)]
struct Ring {
    slots: Vec<Option<(Box<str>, Utf8Bytes)>>,
    next: usize,
    /// Hash of a request id -> its slot. A collision only costs a missed replay.
    index: HashMap<u64, usize, BuildHasherDefault<Passthrough>>,
}

/// The keys are already FNV hashes; hashing them again would be wasted work.
#[derive(Debug, Default)]
struct Passthrough(u64);

impl Hasher for Passthrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// FNV-1a: cheap, and spreads `<run>-<conn>-<seq>` ids evenly.
fn fnv(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl ReplayCache {
    /// Keeps the `capacity` most recent results (rounded to whole shards); 0 keeps none.
    pub fn new(capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        ReplayCache {
            enabled: capacity > 0,
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Ring {
                        slots: (0..per_shard).map(|_| None).collect(),
                        next: 0,
                        index: HashMap::with_capacity_and_hasher(per_shard, Default::default()),
                    })
                })
                .collect(),
        }
    }

    fn shard(&self, hash: u64) -> &Mutex<Ring> {
        // The high bits pick the shard; the index map uses the whole hash.
        &self.shards[((hash >> 48) % SHARDS as u64) as usize]
    }

    /// The cached reply for `request_id`, if it was answered recently.
    pub fn get(&self, request_id: &str) -> Option<Utf8Bytes> {
        if !self.enabled {
            return None;
        }
        let h = fnv(request_id);
        let ring = self.shard(h).lock().unwrap_or_else(|e| e.into_inner());
        let slot = *ring.index.get(&h)?;
        match &ring.slots[slot] {
            Some((id, reply)) if &**id == request_id => Some(reply.clone()),
            _ => None,
        }
    }

    pub fn insert(&self, request_id: &str, reply: Utf8Bytes) {
        if !self.enabled {
            return;
        }
        let h = fnv(request_id);
        let evicted = {
            let mut ring = self.shard(h).lock().unwrap_or_else(|e| e.into_inner());
            let at = ring.next;
            ring.next = (at + 1) % ring.slots.len();
            let evicted = ring.slots[at].replace((request_id.into(), reply));
            if let Some((old, _)) = &evicted {
                let oh = fnv(old);
                if ring.index.get(&oh) == Some(&at) {
                    ring.index.remove(&oh);
                }
            }
            ring.index.insert(h, at);
            evicted
        };
        drop(evicted);
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
        let c = ReplayCache::new(4 * SHARDS);
        let n = 40 * SHARDS;
        for i in 0..n {
            c.insert(&format!("r{i}"), Utf8Bytes::from(format!("v{i}")));
        }
        let last = n - 1;
        assert_eq!(
            c.get(&format!("r{last}")).as_deref(),
            Some(format!("v{last}").as_str())
        );
        let kept = (0..n).filter(|i| c.get(&format!("r{i}")).is_some()).count();
        assert!(kept <= 4 * SHARDS && kept > 2 * SHARDS, "bounded: {kept}");
        assert!(c.get("r0").is_none(), "the oldest were evicted");
        // Re-inserting an id keeps the newest reply.
        c.insert("dup", Utf8Bytes::from("a"));
        c.insert("dup", Utf8Bytes::from("b"));
        assert_eq!(c.get("dup").as_deref(), Some("b"));
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
