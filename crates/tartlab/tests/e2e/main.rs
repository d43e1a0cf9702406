//! tartlab end to end: one test binary, a module per feature, each quality case (faults,
//! a hostile guest or neighbour, concurrency, secrets) in a submodule of the feature it
//! attacks, so `cargo nextest run -E 'test(/^up::reliability::/)'` selects one of them.
//! The real `tartlab` binary runs against tart-sim installed as `tart` on a private PATH
//! (`support::sim`, needs root) or alone (`support::run`, for the lab file and the CLI).
//! docs/TESTING.md, "Where a test lives", maps features to modules.

mod support;

mod access;
mod cli;
mod down;
mod lab_file;
mod labs;
mod networks;
mod orchard;
mod outputs;
mod plan;
mod platform;
mod provisioning;
mod snapshots;
mod stop_start;
mod up;
mod watching;
