//! `kubectl-astro_sha`: a kubectl plugin (`kubectl astro-sha ...`) that pins Astro Private Cloud
//! Airflow Deployments to Astro Runtime image digests. The program lives in the library
//! (`kubectl_astro_sha::main`: parse, logging, runtime, dispatch, exit code), so that its modules
//! can stay private and the compiler sees what is never used.

use std::process::ExitCode;

fn main() -> ExitCode {
    kubectl_astro_sha::main()
}
