//! Replays the checked-in fuzzing corpora (`fuzz/corpus/<target>/`) through the fuzz
//! targets' bodies, so that an input that once crashed a target, kept in its corpus,
//! is checked by every `cargo test`, without cargo-fuzz or a nightly compiler.
//!
//! The bodies are the very code the cargo-fuzz binaries run: `fuzz/src/targets/`,
//! included here as a module.

#![cfg(feature = "policy")]

use std::path::{Path, PathBuf};

#[path = "../fuzz/src/targets/mod.rs"]
mod targets;

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the corpus of `{target}`, {}: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| {
            entry
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path()
        })
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_corpus_input_passes_its_target() {
    let mut failed = Vec::new();
    for &(target, body) in targets::TARGETS {
        let files = corpus(target);
        assert!(!files.is_empty(), "the corpus of `{target}` is empty");
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                failed.push(file);
            }
        }
    }
    assert!(
        failed.is_empty(),
        "these corpus inputs fail their target (the panic messages are above): {failed:#?}"
    );
}
