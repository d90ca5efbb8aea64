//! A generated profile and generated syscalls: the profile model, the compiled BPF
//! programs in an independent interpreter, and the crate's interpreter must agree.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tasksandbox_fuzz::targets::seccomp_differential(data));
