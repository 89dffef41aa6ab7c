//! The API server: where it is and who we are (config), the client and its paged reads, the slim shapes lists are read into, Houston discovery, and the writes (apply/rollback).

pub(crate) mod apply;
pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod configmaps;
pub(crate) mod platform;
pub(crate) mod request_log;
pub(crate) mod restart;
pub(crate) mod slim;
