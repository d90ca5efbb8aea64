//! Docker/OCI JSON seccomp profiles: the loader never panics, and what it loads
//! compiles to programs that decide like the profile model.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tasksandbox_fuzz::targets::json_profile(data));
