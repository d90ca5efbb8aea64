//! A small classic-BPF interpreter for seccomp programs.
//!
//! It runs a program the way the kernel runs a seccomp filter: on a `struct
//! seccomp_data`, with the instruction set `seccomp_check_filter` admits, returning the
//! `SECCOMP_RET_*` value. [`run_all`] combines stacked filters with the kernel's rule.
//! The tests use it to check the compiled programs against the profile model without
//! installing them; [`check`] refuses what the kernel would refuse at install time.

use seccompiler::{sock_filter, BpfProgram};

/// `AUDIT_ARCH_X86_64`, the `arch` of native x86_64 syscalls (and of x32 ones).
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// `AUDIT_ARCH_I386`, the `arch` of 32-bit x86 syscalls (`int 0x80`).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// `AUDIT_ARCH_AARCH64`.
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// The longest program the kernel accepts (`BPF_MAXINSNS`).
pub const MAX_INSNS: usize = 4096;

/// Size of `struct seccomp_data` in bytes.
const DATA_LEN: u32 = 64;

// Instruction classes and fields, from <linux/bpf_common.h> and <linux/filter.h>.
const CLASS_MASK: u16 = 0x07;
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;

pub(crate) const W: u16 = 0x00;
pub(crate) const ABS: u16 = 0x20;
const IMM: u16 = 0x00;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;

pub(crate) const K: u16 = 0x00;
const X: u16 = 0x08;
const A: u16 = 0x10;

const ADD: u16 = 0x00;
const SUB: u16 = 0x10;
const MUL: u16 = 0x20;
const DIV: u16 = 0x30;
const OR: u16 = 0x40;
pub(crate) const AND: u16 = 0x50;
const LSH: u16 = 0x60;
const RSH: u16 = 0x70;
const NEG: u16 = 0x80;
const XOR: u16 = 0xa0;

pub(crate) const JA: u16 = 0x00;
pub(crate) const JEQ: u16 = 0x10;
pub(crate) const JGT: u16 = 0x20;
pub(crate) const JGE: u16 = 0x30;
pub(crate) const JSET: u16 = 0x40;

const TAX: u16 = 0x00;
const TXA: u16 = 0x80;

/// Scratch memory slots (`BPF_MEMWORDS`).
const MEMWORDS: usize = 16;

/// Opcodes of instructions used as statements and jumps by the compiler.
pub(crate) mod op {
    use super::*;
    /// `A = data[k]` (32-bit load).
    pub(crate) const LD_ABS: u16 = LD | W | ABS;
    /// `A &= k`.
    pub(crate) const AND_K: u16 = ALU | AND | K;
    /// `return k`.
    pub(crate) const RET_K: u16 = RET | K;
    /// `pc += k`.
    pub(crate) const JA: u16 = JMP | super::JA;
    /// `pc += (A == k) ? jt : jf`.
    pub(crate) const JEQ_K: u16 = JMP | JEQ | K;
    /// `pc += (A > k) ? jt : jf`.
    pub(crate) const JGT_K: u16 = JMP | JGT | K;
    /// `pc += (A >= k) ? jt : jf`.
    pub(crate) const JGE_K: u16 = JMP | JGE | K;
    /// `pc += (A & k) ? jt : jf`.
    pub(crate) const JSET_K: u16 = JMP | JSET | K;
}

/// The input of a seccomp filter, `struct seccomp_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeccompData {
    /// The syscall number, as the kernel passes it (an `int`).
    pub nr: i32,
    /// The `AUDIT_ARCH_*` value of the calling convention.
    pub arch: u32,
    /// The address of the syscall instruction.
    pub instruction_pointer: u64,
    /// The six syscall arguments.
    pub args: [u64; 6],
}

impl SeccompData {
    /// A call of syscall `nr` with `args` in the build target's native convention.
    ///
    /// `nr` is cut to 32 bits as the kernel does.
    pub fn native(nr: i64, args: [u64; 6]) -> Self {
        SeccompData {
            nr: nr as i32,
            arch: NATIVE_AUDIT_ARCH,
            instruction_pointer: 0,
            args,
        }
    }

    /// The 32-bit word at byte offset `offset`, as a little-endian kernel lays the
    /// structure out; `None` if unaligned or out of bounds.
    fn word(&self, offset: u32) -> Option<u32> {
        let low = |v: u64| v as u32;
        let high = |v: u64| (v >> 32) as u32;
        Some(match offset {
            0 => self.nr as u32,
            4 => self.arch,
            8 => low(self.instruction_pointer),
            12 => high(self.instruction_pointer),
            16..=60 if offset % 4 == 0 => {
                let arg = *self.args.get(((offset - 16) / 8) as usize)?;
                if offset % 8 == 0 {
                    low(arg)
                } else {
                    high(arg)
                }
            }
            _ => return None,
        })
    }
}

/// The `AUDIT_ARCH_*` value of the build target's native syscalls.
#[cfg(target_arch = "x86_64")]
pub const NATIVE_AUDIT_ARCH: u32 = AUDIT_ARCH_X86_64;
/// The `AUDIT_ARCH_*` value of the build target's native syscalls.
#[cfg(target_arch = "aarch64")]
pub const NATIVE_AUDIT_ARCH: u32 = AUDIT_ARCH_AARCH64;
/// The `AUDIT_ARCH_*` value of the build target's native syscalls (none known).
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const NATIVE_AUDIT_ARCH: u32 = 0;

/// Why the kernel would refuse to install a program.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BpfError {
    /// The program is empty or longer than [`MAX_INSNS`].
    #[error("a seccomp program has 1 to {MAX_INSNS} instructions, this one has {len}")]
    BadLength {
        /// Its length.
        len: usize,
    },
    /// An instruction seccomp does not admit (or a malformed one).
    #[error("instruction {pc} (code {code:#06x}, k {k:#x}) is not allowed in a seccomp filter")]
    BadInstruction {
        /// Its index.
        pc: usize,
        /// Its opcode.
        code: u16,
        /// Its operand.
        k: u32,
    },
    /// A jump that leaves the program.
    #[error("instruction {pc} jumps past the end of the program")]
    JumpOutOfRange {
        /// The jump's index.
        pc: usize,
    },
    /// The last instruction is not a return, so execution could fall off the end.
    #[error("the last instruction is not a return")]
    NoFinalReturn,
}

/// Checks `program` as the kernel does when it is installed (`bpf_check_classic` and
/// `seccomp_check_filter`), except that scratch memory is not checked for reads before
/// writes.
pub fn check(program: &[sock_filter]) -> Result<(), BpfError> {
    let len = program.len();
    if len == 0 || len > MAX_INSNS {
        return Err(BpfError::BadLength { len });
    }
    for (pc, insn) in program.iter().enumerate() {
        let bad = || BpfError::BadInstruction {
            pc,
            code: insn.code,
            k: insn.k,
        };
        let code = insn.code;
        match code & CLASS_MASK {
            LD => match code {
                c if c == LD | W | ABS => {
                    if insn.k % 4 != 0 || insn.k >= DATA_LEN {
                        return Err(bad());
                    }
                }
                c if c == LD | W | LEN || c == LD | IMM => {}
                c if c == LD | MEM => {
                    if insn.k as usize >= MEMWORDS {
                        return Err(bad());
                    }
                }
                _ => return Err(bad()),
            },
            LDX => match code {
                c if c == LDX | W | LEN || c == LDX | IMM => {}
                c if c == LDX | MEM => {
                    if insn.k as usize >= MEMWORDS {
                        return Err(bad());
                    }
                }
                _ => return Err(bad()),
            },
            ST | STX => {
                if code & !CLASS_MASK != 0 || insn.k as usize >= MEMWORDS {
                    return Err(bad());
                }
            }
            ALU => {
                let alu_op = code & 0xf0;
                let src = code & X;
                if code & !(0xf0 | X | CLASS_MASK) != 0 {
                    return Err(bad());
                }
                match alu_op {
                    ADD | SUB | MUL | OR | AND | XOR | NEG => {}
                    DIV => {
                        if src == K && insn.k == 0 {
                            return Err(bad());
                        }
                    }
                    LSH | RSH => {
                        if src == K && insn.k >= 32 {
                            return Err(bad());
                        }
                    }
                    _ => return Err(bad()),
                }
            }
            JMP => {
                if code & !(0xf0 | X | CLASS_MASK) != 0 {
                    return Err(bad());
                }
                let remaining = len - pc - 1;
                match code & 0xf0 {
                    JA => {
                        if code & X != 0 {
                            return Err(bad());
                        }
                        if insn.k as usize >= remaining {
                            return Err(BpfError::JumpOutOfRange { pc });
                        }
                    }
                    JEQ | JGT | JGE | JSET => {
                        if usize::from(insn.jt) >= remaining || usize::from(insn.jf) >= remaining {
                            return Err(BpfError::JumpOutOfRange { pc });
                        }
                    }
                    _ => return Err(bad()),
                }
            }
            RET => {
                if code != RET | K && code != RET | A {
                    return Err(bad());
                }
            }
            MISC => {
                if code != MISC | TAX && code != MISC | TXA {
                    return Err(bad());
                }
            }
            _ => return Err(bad()),
        }
    }
    match program.last().map(|i| i.code) {
        Some(c) if c == RET | K || c == RET | A => Ok(()),
        _ => Err(BpfError::NoFinalReturn),
    }
}

/// Runs one seccomp program on `data` and returns its `SECCOMP_RET_*` value.
///
/// A program the kernel would refuse ([`check`]) fails closed here: an instruction that
/// cannot run, or running off the end, gives `SECCOMP_RET_KILL_PROCESS`. A division by
/// zero ends the program with 0 (`SECCOMP_RET_KILL_THREAD`), as in the kernel.
pub fn run(program: &[sock_filter], data: &SeccompData) -> u32 {
    const FAIL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; MEMWORDS];
    let mut pc: usize = 0;
    while let Some(insn) = program.get(pc) {
        pc += 1;
        let k = insn.k;
        let code = insn.code;
        match code & CLASS_MASK {
            LD | LDX => {
                let value = match code & 0xe0 {
                    ABS if code & 0x18 == W && code & CLASS_MASK == LD => match data.word(k) {
                        Some(v) => v,
                        None => return FAIL,
                    },
                    LEN if code & 0x18 == W => DATA_LEN,
                    IMM => k,
                    MEM => match mem.get(k as usize) {
                        Some(v) => *v,
                        None => return FAIL,
                    },
                    _ => return FAIL,
                };
                if code & CLASS_MASK == LD {
                    a = value;
                } else {
                    x = value;
                }
            }
            ST | STX => {
                let value = if code & CLASS_MASK == ST { a } else { x };
                match mem.get_mut(k as usize) {
                    Some(slot) => *slot = value,
                    None => return FAIL,
                }
            }
            ALU => {
                let operand = if code & X != 0 { x } else { k };
                a = match code & 0xf0 {
                    ADD => a.wrapping_add(operand),
                    SUB => a.wrapping_sub(operand),
                    MUL => a.wrapping_mul(operand),
                    DIV => match a.checked_div(operand) {
                        Some(v) => v,
                        None => return 0,
                    },
                    OR => a | operand,
                    AND => a & operand,
                    XOR => a ^ operand,
                    LSH => a.checked_shl(operand).unwrap_or(0),
                    RSH => a.checked_shr(operand).unwrap_or(0),
                    NEG => a.wrapping_neg(),
                    _ => return FAIL,
                };
            }
            JMP => {
                let operand = if code & X != 0 { x } else { k };
                let taken = match code & 0xf0 {
                    JA => {
                        pc = match pc.checked_add(k as usize) {
                            Some(next) => next,
                            None => return FAIL,
                        };
                        continue;
                    }
                    JEQ => a == operand,
                    JGT => a > operand,
                    JGE => a >= operand,
                    JSET => a & operand != 0,
                    _ => return FAIL,
                };
                pc += usize::from(if taken { insn.jt } else { insn.jf });
            }
            RET => {
                return match code & 0x18 {
                    K => k,
                    A => a,
                    _ => FAIL,
                }
            }
            MISC => match code & 0xf8 {
                TAX => x = a,
                TXA => a = x,
                _ => return FAIL,
            },
            _ => return FAIL,
        }
    }
    FAIL
}

/// Runs every program of a stack, installed in the order of `programs`, and combines
/// their results as the kernel does: the most restrictive action wins (the lowest
/// `SECCOMP_RET_ACTION_FULL` part, compared as a signed number); among equally
/// restrictive results, the one of the most recently installed program (the last).
/// No program: `SECCOMP_RET_ALLOW`.
pub fn run_all(programs: &[BpfProgram], data: &SeccompData) -> u32 {
    let action_only = |ret: u32| (ret & libc::SECCOMP_RET_ACTION_FULL) as i32;
    let mut result = libc::SECCOMP_RET_ALLOW;
    for program in programs.iter().rev() {
        let ret = run(program, data);
        if action_only(ret) < action_only(result) {
            result = ret;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmt(code: u16, k: u32) -> sock_filter {
        sock_filter {
            code,
            jt: 0,
            jf: 0,
            k,
        }
    }

    fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
        sock_filter { code, jt, jf, k }
    }

    fn errno(e: u32) -> u32 {
        libc::SECCOMP_RET_ERRNO | e
    }

    #[test]
    fn loads_follow_the_kernel_layout() {
        let data = SeccompData {
            nr: -1,
            arch: AUDIT_ARCH_X86_64,
            instruction_pointer: 0x1122_3344_5566_7788,
            args: [0, 0x0000_0001_0000_0028, 0, 0, 0, 0xdead_beef_0000_0000],
        };
        let load_ret = |offset| vec![stmt(op::LD_ABS, offset), stmt(RET | A, 0)];
        assert_eq!(run(&load_ret(0), &data), u32::MAX);
        assert_eq!(run(&load_ret(4), &data), AUDIT_ARCH_X86_64);
        assert_eq!(run(&load_ret(8), &data), 0x5566_7788);
        assert_eq!(run(&load_ret(12), &data), 0x1122_3344);
        assert_eq!(run(&load_ret(24), &data), 0x28);
        assert_eq!(run(&load_ret(28), &data), 1);
        assert_eq!(run(&load_ret(60), &data), 0xdead_beef);
        assert_eq!(run(&load_ret(64), &data), libc::SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&load_ret(2), &data), libc::SECCOMP_RET_KILL_PROCESS);
        assert!(check(&load_ret(60)).is_ok());
        assert!(check(&load_ret(64)).is_err());
    }

    #[test]
    fn jumps_alu_and_memory() {
        let data = SeccompData::native(39, [5, 0, 0, 0, 0, 0]);
        let program = vec![
            stmt(op::LD_ABS, 16),         // A = arg0 (5)
            stmt(ALU | ADD | K, 3),       // A = 8
            stmt(ST, 2),                  // M[2] = 8
            stmt(LDX | IMM, 2),           // X = 2
            stmt(ALU | DIV | X, 0),       // A = 4
            jump(JMP | JEQ | K, 4, 0, 2), // A == 4 ?
            stmt(LD | MEM, 2),            // A = M[2] = 8
            jump(op::JSET_K, 8, 1, 0),    // A & 8 ? skip
            stmt(op::RET_K, 1),           //
            stmt(RET | A, 0),             // return 8
        ];
        assert_eq!(check(&program), Ok(()));
        assert_eq!(run(&program, &data), 8);
    }

    #[test]
    fn check_refuses_what_the_kernel_refuses() {
        assert_eq!(check(&[]), Err(BpfError::BadLength { len: 0 }));
        assert_eq!(
            check(&[jump(op::JEQ_K, 0, 1, 0)]),
            Err(BpfError::JumpOutOfRange { pc: 0 })
        );
        assert_eq!(check(&[stmt(op::LD_ABS, 0)]), Err(BpfError::NoFinalReturn));
        assert!(matches!(
            check(&[stmt(LD | 0x08 | ABS, 0), stmt(op::RET_K, 0)]),
            Err(BpfError::BadInstruction { pc: 0, .. })
        ));
        assert!(matches!(
            check(&[stmt(ALU | DIV | K, 0), stmt(op::RET_K, 0)]),
            Err(BpfError::BadInstruction { pc: 0, .. })
        ));
        let too_long = vec![stmt(op::RET_K, 0); MAX_INSNS + 1];
        assert_eq!(
            check(&too_long),
            Err(BpfError::BadLength { len: MAX_INSNS + 1 })
        );
    }

    #[test]
    fn falling_off_the_end_kills() {
        let data = SeccompData::native(0, [0; 6]);
        assert_eq!(
            run(&[stmt(op::LD_ABS, 0)], &data),
            libc::SECCOMP_RET_KILL_PROCESS
        );
    }

    #[test]
    fn stacked_filters_follow_the_kernel() {
        let data = SeccompData::native(0, [0; 6]);
        let ret = |v: u32| vec![stmt(op::RET_K, v)];
        let allow = ret(libc::SECCOMP_RET_ALLOW);
        // The newest (last) errno wins among errnos.
        assert_eq!(run_all(&[ret(errno(1)), ret(errno(38))], &data), errno(38));
        assert_eq!(run_all(&[ret(errno(38)), ret(errno(1))], &data), errno(1));
        // The most restrictive wins whatever the order.
        assert_eq!(
            run_all(&[ret(libc::SECCOMP_RET_KILL_PROCESS), ret(errno(1))], &data),
            libc::SECCOMP_RET_KILL_PROCESS
        );
        assert_eq!(
            run_all(&[ret(errno(1)), ret(libc::SECCOMP_RET_TRAP)], &data),
            libc::SECCOMP_RET_TRAP
        );
        assert_eq!(
            run_all(&[ret(libc::SECCOMP_RET_LOG), allow.clone()], &data),
            libc::SECCOMP_RET_LOG
        );
        assert_eq!(run_all(&[allow], &data), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run_all(&[], &data), libc::SECCOMP_RET_ALLOW);
    }
}
