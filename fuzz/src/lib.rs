//! The bodies of tasksandbox's fuzz targets.
//!
//! Each target is a function of the raw input bytes, in [`targets`]; the binaries in
//! `fuzz_targets/` only hand libFuzzer's input to it, and the crate's
//! `tests/fuzz_corpora.rs` runs every file of `corpus/<target>/` through the same
//! function, so a crash found once stays fixed.

pub mod targets;
