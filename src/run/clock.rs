//! The engine's clock. Every deadline the engine computes starts from `now()`, which is tokio's
//! clock as a std `Instant`: the same reading in a real run, and a clock that
//! `tokio::time::pause` stops and `advance` moves in tests, so retries, backoffs and timeouts
//! are tested in virtual time (seconds of schedule in microseconds of test).

use std::time::Instant;

/// The current instant on the runtime's clock.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}
