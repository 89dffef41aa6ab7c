//! One module per subcommand: its flags (`Args`) and its `run`.

pub mod completion;
pub mod enable;
pub mod import;
pub mod operations;
pub mod pin;
pub mod resolve;
pub mod show;
pub mod status;
pub mod unpin;
pub mod version;
