//! Orchestration several commands share (as cargo's and uv's `commands/operations`): the read
//! pipeline (`load`), the releases catalog as a digest → version index (`releases`) and the write
//! pipeline (`write`). Commands call these; these call the layers
//! below. Nothing here parses flags.

pub(crate) mod contexts;
pub(crate) mod load;
pub(crate) mod releases;
pub(crate) mod write;
