//! The API server: where it is and who we are (config), the client and its paged reads, the slim shapes lists are read into, Houston discovery, and the writes (apply/rollback).

pub mod apply;
pub mod client;
pub mod config;
pub mod platform;
pub mod restart;
pub mod slim;
