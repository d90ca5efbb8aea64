//! A classic-BPF interpreter for seccomp filters, written for the fuzz targets
//! independently of the crate's own (`tasksandbox::seccomp::bpf`), so that the two can
//! be checked against each other as well as against the profile model.
//!
//! It is strict where the crate's interpreter fails closed: an instruction seccomp does
//! not admit, a load outside `struct seccomp_data`, a jump out of the program or
//! running off its end is a panic, since the crate must never emit such a program.

use tasksandbox::seccomp::bpf::SeccompData;

/// `SECCOMP_RET_ACTION_FULL`: the action part of a filter's return value.
const ACTION_FULL: u32 = 0xffff_0000;

/// `struct seccomp_data` as the kernel lays it out in memory, in native byte order.
fn bytes(data: &SeccompData) -> [u8; 64] {
    let mut out = [0u8; 64];
    out[0..4].copy_from_slice(&data.nr.to_ne_bytes());
    out[4..8].copy_from_slice(&data.arch.to_ne_bytes());
    out[8..16].copy_from_slice(&data.instruction_pointer.to_ne_bytes());
    for (i, arg) in data.args.iter().enumerate() {
        let at = 16 + 8 * i;
        out[at..at + 8].copy_from_slice(&arg.to_ne_bytes());
    }
    out
}

/// One instruction, as `struct sock_filter`.
#[derive(Debug, Clone, Copy)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// Runs one filter on `data` and returns its `SECCOMP_RET_*` value.
pub fn run(program: &[Insn], data: &SeccompData) -> u32 {
    let input = bytes(data);
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    // Every jump goes forward, so a program ends in at most `len` steps.
    loop {
        let Some(&Insn { code, jt, jf, k }) = program.get(pc) else {
            panic!("ran off the end of a {}-instruction program", program.len());
        };
        pc += 1;
        let at = pc - 1;
        macro_rules! fail {
            ($why:expr) => {
                panic!("instruction {at} ({code:#06x}, k={k:#x}): {}", $why)
            };
        }
        match code {
            // BPF_LD | BPF_W | BPF_ABS
            0x20 => {
                let at = k as usize;
                if k % 4 != 0 || at + 4 > input.len() {
                    fail!("load outside seccomp_data");
                }
                a = u32::from_ne_bytes([input[at], input[at + 1], input[at + 2], input[at + 3]]);
            }
            0x80 => a = 64, // BPF_LD | BPF_W | BPF_LEN
            0x81 => x = 64, // BPF_LDX | BPF_W | BPF_LEN
            0x00 => a = k,  // BPF_LD | BPF_IMM
            0x01 => x = k,  // BPF_LDX | BPF_IMM
            0x60 => a = *mem.get(k as usize).unwrap_or_else(|| fail!("scratch slot")),
            0x61 => x = *mem.get(k as usize).unwrap_or_else(|| fail!("scratch slot")),
            0x02 => {
                *mem.get_mut(k as usize)
                    .unwrap_or_else(|| fail!("scratch slot")) = a
            }
            0x03 => {
                *mem.get_mut(k as usize)
                    .unwrap_or_else(|| fail!("scratch slot")) = x
            }
            0x07 => x = a,                // BPF_MISC | BPF_TAX
            0x87 => a = x,                // BPF_MISC | BPF_TXA
            0x84 => a = a.wrapping_neg(), // BPF_ALU | BPF_NEG
            // BPF_ALU with K (0x04) or X (0x0c) operand.
            c if c & 0x07 == 0x04 && c & 0xf0 != 0x80 => {
                let v = if c & 0x08 != 0 { x } else { k };
                a = match c & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 if v == 0 => return 0, // the kernel's division by zero
                    0x30 => a / v,
                    0x40 => a | v,
                    0x50 => a & v,
                    0xa0 => a ^ v,
                    0x60 if v < 32 => a << v,
                    0x70 if v < 32 => a >> v,
                    0x60 | 0x70 => 0,
                    _ => fail!("not an ALU operation"),
                };
            }
            0x05 => pc = pc.checked_add(k as usize).unwrap_or_else(|| fail!("jump")), // BPF_JA
            // BPF_JMP conditional with K (0x05) or X (0x0d) operand.
            c if c & 0x07 == 0x05 => {
                let v = if c & 0x08 != 0 { x } else { k };
                let taken = match c & 0xf0 {
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    _ => fail!("not a jump"),
                };
                pc += usize::from(if taken { jt } else { jf });
            }
            0x06 => return k, // BPF_RET | BPF_K
            0x16 => return a, // BPF_RET | BPF_A
            _ => fail!("not admitted in a seccomp filter"),
        }
        if pc > program.len() {
            panic!("instruction {at} jumps out of the program");
        }
    }
}

/// Runs a stack of filters, installed in the order of `programs`, as the kernel does:
/// the most restrictive action wins (action bits compared as a signed number), and
/// among equally restrictive results the most recently installed filter's.
pub fn run_stack(programs: &[Vec<Insn>], data: &SeccompData) -> u32 {
    let mut result: Option<u32> = None;
    for program in programs {
        let ret = run(program, data);
        let restrictiveness = |r: u32| (r & ACTION_FULL) as i32;
        match result {
            Some(best) if restrictiveness(best) < restrictiveness(ret) => {}
            _ => result = Some(ret),
        }
    }
    // No filter at all: allowed.
    result.unwrap_or(0x7fff_0000)
}
