//! The API server: the client and its reads, Houston discovery, and the writes (apply/rollback).

pub mod apply;
pub mod client;
pub mod platform;
