//! Orchestration several commands share (as cargo's and uv's `commands/operations`): the read
//! pipeline (`load`), the releases catalog as a digest → version index (`releases`) and the write
//! pipeline (`write`). Commands call these; these call the layers
//! below. Nothing here parses flags.

pub mod contexts;
pub mod load;
pub mod releases;
pub mod write;
