//! Turning stamps into numbers: the recorder (histograms), its per-worker shards, and the run
//! summary.

pub mod recorder;
pub mod shards;
pub mod summary;

pub use recorder::{Histograms, Recorder};
pub use shards::{Recorders, Shard};
pub use summary::Summary;
