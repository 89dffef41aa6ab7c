//! Orchestration several commands share (as cargo's and uv's `commands/operations`): the read
//! pipeline (`load`) and the write pipeline (`write`). Commands call these; these call the layers
//! below. Nothing here parses flags.

pub mod contexts;
pub mod load;
pub mod write;
