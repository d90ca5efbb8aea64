//! TOML task policies: the parser never panics, errors point inside the text, and
//! what parses round-trips through its canonical text.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tasksandbox_fuzz::targets::policy_toml(data));
