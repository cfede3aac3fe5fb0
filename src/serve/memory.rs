//! Session state of a set size under a server-wide budget (`--session-memory`,
//! `--memory-limit`): the reference server's memory-pressure knee.
//!
//! Real servers keep state per session (caches, buffers, auth context) and run out of memory
//! long before they run out of sockets. The budget is counted by the server itself, as Redis
//! counts `maxmemory`, so the knee is exact (limit / session size) while the memory is real:
//! each session's bytes are written, hence resident, and show in the server's RSS per connection.

use std::sync::Arc;

use super::Shared;

/// One session's state; its bytes go back to the budget when the session ends.
pub(crate) struct SessionState {
    /// Held only to be resident, as a real session's state is; never read.
    _bytes: Box<[u8]>,
    shared: Arc<Shared>,
}

impl Drop for SessionState {
    fn drop(&mut self) {
        self.shared
            .stats
            .release_memory(self.shared.config.session_memory);
    }
}

/// What a new session gets: `Ok(None)` when sessions hold no state, `Err(())` when the budget
/// is spent (the session runs, but every call it makes is answered `OUT_OF_MEMORY`).
pub(crate) fn take(shared: &Arc<Shared>) -> Result<Option<SessionState>, ()> {
    let bytes = shared.config.session_memory;
    if bytes == 0 {
        return Ok(None);
    }
    if !shared
        .stats
        .reserve_memory(bytes, shared.config.memory_limit)
    {
        return Err(());
    }
    // Written, not only allocated: untouched pages would cost nothing and show no pressure.
    let len = usize::try_from(bytes).unwrap_or(usize::MAX);
    Ok(Some(SessionState {
        _bytes: vec![0xA5u8; len].into_boxed_slice(),
        shared: shared.clone(),
    }))
}
