//! The API server: where it is and who we are (config), the client and its reads, Houston discovery, and the writes (apply/rollback).

pub mod apply;
pub mod client;
pub mod config;
pub mod platform;
pub mod restart;
