//! The benchmark suite shared by `cargo xtask bench` (the `tessera-bench` binary) and the
//! correctness tests: realistic C programs compiled for eBPF (committed objects) and
//! natively (the physical baseline), generated long programs, the engines that run them
//! side by side, and the harness and report.

pub mod engines;
pub mod generated;
pub mod harness;
pub mod helper;
pub mod inputs;
pub mod loader;
pub mod programs;
pub mod report;
pub mod tessera_api;
