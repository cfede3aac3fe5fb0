//! The commands: each wires configuration, the layers below and the outputs together. Only
//! this layer turns settings into work (the engine, the gate and the reporters never read the
//! configuration themselves).

pub mod capacity;
pub mod merge;
pub mod meta;
pub mod run;
pub mod tools;
