//! `kubectl astro-sha` as a library: the module tree. The binary (`src/main.rs`) parses the
//! command line and dispatches to `commands`; everything else is layered below it (see
//! docs/architecture.md): `commands` → `args` → `kube`, `registry`, `output` → `core` → `error`.

pub mod args;
pub mod cli;
pub mod commands;
pub mod core;
pub mod error;
pub mod kube;
pub mod output;
pub mod registry;
