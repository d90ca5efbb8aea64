//! Seccomp: the profile model, the built-in default profile, and its compilation to the
//! BPF programs a container's process installs just before `execve`.

pub mod syscalls;
