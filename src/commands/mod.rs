//! One module per subcommand: its flags (`Args`) and its `run`.

pub(crate) mod completion;
pub(crate) mod enable;
pub(crate) mod import;
pub(crate) mod operations;
pub(crate) mod pin;
pub(crate) mod resolve;
pub(crate) mod show;
pub(crate) mod status;
pub(crate) mod unpin;
pub(crate) mod version;
