//! Turning stamps into numbers: the recorder (histograms) and the run summary.

pub mod recorder;
pub mod summary;

pub use recorder::{Histograms, Recorder};
pub use summary::Summary;
