//! The fuzz targets' bodies, shared by the cargo-fuzz binaries (`fuzz/fuzz_targets/`)
//! and by the crate's corpus replay test (`tests/fuzz_corpora.rs`), which includes
//! this file with `#[path]`. Everything here names the crate as `tasksandbox` and uses
//! only its public API.
//!
//! Adding a target: write `fn NAME(data: &[u8])` in a module here, list it in
//! [`TARGETS`], add a binary `fuzz_targets/NAME.rs` and its `[[bin]]` in
//! `fuzz/Cargo.toml`, and check in seeds under `fuzz/corpus/NAME/`. The replay test
//! picks it up from [`TARGETS`].

mod cbpf;
mod differential;
mod docker_json;
mod json_profile;
mod policy_toml;

pub use differential::seccomp_differential;
pub use json_profile::json_profile;
pub use policy_toml::policy_toml;

/// A target's body: it panics if the input shows a bug.
pub type Target = fn(&[u8]);

/// Every target, by the name of its binary and of its corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("json_profile", json_profile),
    ("seccomp_differential", seccomp_differential),
    ("policy_toml", policy_toml),
];
