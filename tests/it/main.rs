//! The one integration-test crate: every module below runs the real `kubectl-astro_sha` binary,
//! most of them against the local test bed (`scripts/testbed up`). One crate instead of one per
//! file means the shared harness (`support`) and the dependencies are compiled and linked once.
//!
//! Run one module with `scripts/test --test it pin::` (a name filter), one test with
//! `scripts/test --test it pin::second_pin_is_a_noop`.

mod support;

mod confirm;
mod contexts;
mod enable_status;
mod enable_values;
mod exit_codes;
mod faults_api;
mod faults_input;
mod faults_registry;
mod fleet;
mod harness_smoke;
mod hostile_cluster;
mod hostile_registry;
mod houston_digests;
mod import;
mod krew;
mod kubeflags;
mod layering;
mod pin;
mod pin_plan_tables;
mod pin_upgrade;
mod platform;
mod plugin;
mod resolve;
mod show;
mod tables;
mod values_out;
