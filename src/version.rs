//! Version string: crate version plus the git commit it was built from (set by build.rs).

pub const SHORT: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("ASTRO_SHA_GIT_COMMIT"),
    ")"
);
pub const COMMIT: &str = env!("ASTRO_SHA_GIT_COMMIT");
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
