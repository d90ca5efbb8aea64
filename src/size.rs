//! Task size: CPU units × memory, as Fargate counts them.
//!
//! 1024 CPU units are one vCPU. [`TaskSize::fargate`] accepts exactly Fargate's table
//! of (CPU, memory) pairs; [`TaskSize::custom`] and [`TaskSize::memory_only`] take any
//! size a host can give.

use std::fmt;

/// Fargate's task sizes: CPU units → (first, last, step) memory in MiB.
const FARGATE_TABLE: [(u32, u64, u64, u64); 7] = [
    (256, 512, 2048, 0), // special-cased: 512, 1024, 2048
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

/// The smallest memory limit a task can have, in MiB: below this the runtime's own
/// start-up does not fit.
pub const MIN_MEMORY_MIB: u64 = 6;

/// The largest CPU allowance, in CPU units (1024 per vCPU): 1024 vCPUs.
pub const MAX_CPU_UNITS: u32 = 1024 * 1024;

/// A task's CPU and memory ceiling.
///
/// ```
/// use tasksandbox::TaskSize;
/// let size = TaskSize::fargate(1024, 2048).unwrap();
/// assert_eq!(size.cpu_units(), Some(1024));
/// assert!(TaskSize::fargate(1024, 1024).is_err());
/// let free = TaskSize::custom(300, 700).unwrap();
/// assert_eq!(free.memory_mib(), 700);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TaskSize {
    cpu_units: Option<u32>,
    memory_mib: u64,
}

impl TaskSize {
    /// A size from Fargate's table; anything else is refused with an error that lists
    /// the memory values valid for `cpu_units` (or the valid CPU values).
    pub fn fargate(cpu_units: u32, memory_mib: u64) -> Result<Self, SizeError> {
        let valid = fargate_memory_for(cpu_units).ok_or(SizeError::FargateCpu { cpu_units })?;
        if !valid.contains(&memory_mib) {
            return Err(SizeError::FargateMemory {
                cpu_units,
                memory_mib,
                valid,
            });
        }
        Ok(TaskSize {
            cpu_units: Some(cpu_units),
            memory_mib,
        })
    }

    /// Any CPU allowance (1..=1048576 units) and memory limit (at least 6 MiB).
    pub fn custom(cpu_units: u32, memory_mib: u64) -> Result<Self, SizeError> {
        check_cpu(cpu_units)?;
        check_memory(memory_mib)?;
        Ok(TaskSize {
            cpu_units: Some(cpu_units),
            memory_mib,
        })
    }

    /// A memory limit with no CPU quota.
    pub fn memory_only(memory_mib: u64) -> Result<Self, SizeError> {
        check_memory(memory_mib)?;
        Ok(TaskSize {
            cpu_units: None,
            memory_mib,
        })
    }

    /// CPU units (1024 per vCPU), or `None` when the CPU is not limited.
    pub fn cpu_units(&self) -> Option<u32> {
        self.cpu_units
    }

    /// Memory limit in MiB.
    pub fn memory_mib(&self) -> u64 {
        self.memory_mib
    }

    /// Memory limit in bytes.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_mib.saturating_mul(1024 * 1024)
    }

    /// Whether this size is a row of Fargate's table.
    pub fn is_fargate(&self) -> bool {
        self.cpu_units
            .and_then(fargate_memory_for)
            .is_some_and(|valid| valid.contains(&self.memory_mib))
    }
}

impl Default for TaskSize {
    /// 1 vCPU and 2 GiB, a common Fargate size.
    fn default() -> Self {
        TaskSize {
            cpu_units: Some(1024),
            memory_mib: 2048,
        }
    }
}

impl fmt::Display for TaskSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cpu_units {
            Some(cpu) => write!(f, "{cpu} CPU units, {} MiB", self.memory_mib),
            None => write!(f, "unlimited CPU, {} MiB", self.memory_mib),
        }
    }
}

/// The memory values (MiB) Fargate allows with `cpu_units`, or `None` for a CPU value
/// that is not in the table.
pub fn fargate_memory_for(cpu_units: u32) -> Option<Vec<u64>> {
    let &(_, first, last, step) = FARGATE_TABLE.iter().find(|row| row.0 == cpu_units)?;
    if step == 0 {
        return Some(vec![512, 1024, 2048]);
    }
    Some((first..=last).step_by(step as usize).collect())
}

/// The CPU values (units) of Fargate's table.
pub fn fargate_cpu_values() -> Vec<u32> {
    FARGATE_TABLE.iter().map(|row| row.0).collect()
}

fn check_cpu(cpu_units: u32) -> Result<(), SizeError> {
    if cpu_units == 0 || cpu_units > MAX_CPU_UNITS {
        return Err(SizeError::CpuOutOfRange { cpu_units });
    }
    Ok(())
}

fn check_memory(memory_mib: u64) -> Result<(), SizeError> {
    // The upper bound keeps the byte count far from u64 overflow (16 EiB).
    if !(MIN_MEMORY_MIB..=(1 << 40)).contains(&memory_mib) {
        return Err(SizeError::MemoryOutOfRange { memory_mib });
    }
    Ok(())
}

fn list<T: fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Fargate's ephemeral storage range, in GiB: 20 by default, up to 200.
pub const FARGATE_STORAGE_GIB: std::ops::RangeInclusive<u64> = 20..=200;

/// The task's ephemeral storage: one volume shared by its containers
/// ([`Container::ephemeral_storage_at`](crate::Container::ephemeral_storage_at)),
/// with a size limit; a write past it fails with `ENOSPC` and harms nothing else.
///
/// By default the volume is on disk: an ext4 filesystem of exactly this size, on a
/// loop device over a sparse, nameless file in the storage directory
/// ([`TaskSandboxBuilder::storage_dir`](crate::TaskSandboxBuilder::storage_dir)), made
/// for each start, reachable only from the task's containers, and gone with the task
/// (see [`storage`](crate::storage)). What is written does not count against the task's
/// memory. It needs a launcher with `CAP_SYS_ADMIN` and `mkfs.ext4`.
///
/// [`EphemeralStorage::in_memory_mib`] gives a tmpfs instead: no disk, no privilege,
/// but its contents are memory of the container that writes them, so it can be no
/// larger than the task's memory.
///
/// ```
/// use tasksandbox::EphemeralStorage;
/// assert_eq!(EphemeralStorage::default().bytes(), 20 << 30);
/// assert!(EphemeralStorage::fargate_gib(21).is_ok());
/// assert!(EphemeralStorage::fargate_gib(201).is_err());
/// assert_eq!(EphemeralStorage::custom_mib(8).unwrap().bytes(), 8 << 20);
/// assert!(EphemeralStorage::in_memory_mib(64).unwrap().is_in_memory());
/// assert!(!EphemeralStorage::default().is_in_memory());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EphemeralStorage {
    bytes: u64,
    in_memory: bool,
}

impl Default for EphemeralStorage {
    /// Fargate's default: 20 GiB, on disk.
    fn default() -> Self {
        EphemeralStorage {
            bytes: 20 << 30,
            in_memory: false,
        }
    }
}

impl EphemeralStorage {
    /// A disk-backed volume from Fargate's range, 20..=200 GiB.
    pub fn fargate_gib(gib: u64) -> Result<Self, SizeError> {
        if !FARGATE_STORAGE_GIB.contains(&gib) {
            return Err(SizeError::StorageOutOfRange {
                value: format!("{gib} GiB"),
                range: "20..=200 GiB on Fargate",
            });
        }
        Ok(EphemeralStorage {
            bytes: gib << 30,
            in_memory: false,
        })
    }

    /// A disk-backed volume of any size from 1 MiB to 1 TiB.
    pub fn custom_mib(mib: u64) -> Result<Self, SizeError> {
        Ok(EphemeralStorage {
            bytes: check_storage_mib(mib)? << 20,
            in_memory: false,
        })
    }

    /// An in-memory volume (tmpfs) of 1 MiB to 1 TiB; `build()` refuses one larger
    /// than the task's memory. For small scratch space, or a launcher without the
    /// privilege disk-backed storage needs.
    pub fn in_memory_mib(mib: u64) -> Result<Self, SizeError> {
        Ok(EphemeralStorage {
            bytes: check_storage_mib(mib)? << 20,
            in_memory: true,
        })
    }

    /// The limit in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the volume is in memory (a tmpfs) rather than on disk.
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }
}

fn check_storage_mib(mib: u64) -> Result<u64, SizeError> {
    if !(1..=(1 << 20)).contains(&mib) {
        return Err(SizeError::StorageOutOfRange {
            value: format!("{mib} MiB"),
            range: "1 MiB..=1 TiB",
        });
    }
    Ok(mib)
}

/// A task size that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// The CPU value is not a row of Fargate's table.
    #[error("cpu = {cpu_units} is not a Fargate CPU value; valid: {}", list(&fargate_cpu_values()))]
    FargateCpu {
        /// The CPU units asked for.
        cpu_units: u32,
    },
    /// The memory value is not allowed with this CPU value on Fargate.
    #[error(
        "memory = {memory_mib} MiB is not valid with cpu = {cpu_units} on Fargate; valid memory (MiB): {}",
        list(valid)
    )]
    FargateMemory {
        /// The CPU units asked for.
        cpu_units: u32,
        /// The memory asked for, in MiB.
        memory_mib: u64,
        /// The memory values Fargate allows with this CPU value.
        valid: Vec<u64>,
    },
    /// A free-form CPU value outside 1..=1048576.
    #[error("cpu = {cpu_units} is out of range: CPU units must be 1..={MAX_CPU_UNITS}")]
    CpuOutOfRange {
        /// The CPU units asked for.
        cpu_units: u32,
    },
    /// An ephemeral storage size outside the accepted range.
    #[error("ephemeral storage = {value} is out of range: {range}")]
    StorageOutOfRange {
        /// The size asked for, with its unit.
        value: String,
        /// The accepted range.
        range: &'static str,
    },
    /// A free-form memory value below 6 MiB (or absurdly large).
    #[error("memory = {memory_mib} MiB is out of range: at least {MIN_MEMORY_MIB} MiB")]
    MemoryOutOfRange {
        /// The memory asked for, in MiB.
        memory_mib: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_fargate_table() {
        let expect: [(u32, Vec<u64>); 7] = [
            (256, vec![512, 1024, 2048]),
            (512, (1..=4).map(|g| g * 1024).collect()),
            (1024, (2..=8).map(|g| g * 1024).collect()),
            (2048, (4..=16).map(|g| g * 1024).collect()),
            (4096, (8..=30).map(|g| g * 1024).collect()),
            (8192, (16..=60).step_by(4).map(|g| g * 1024).collect()),
            (16384, (32..=120).step_by(8).map(|g| g * 1024).collect()),
        ];
        for (cpu, mems) in expect {
            assert_eq!(fargate_memory_for(cpu).unwrap(), mems, "cpu {cpu}");
            for mem in mems {
                assert!(TaskSize::fargate(cpu, mem).unwrap().is_fargate());
            }
        }
    }

    #[test]
    fn fargate_refusals_list_valid_values() {
        let err = TaskSize::fargate(256, 4096).unwrap_err();
        assert_eq!(
            err.to_string(),
            "memory = 4096 MiB is not valid with cpu = 256 on Fargate; valid memory (MiB): 512, 1024, 2048"
        );
        let err = TaskSize::fargate(300, 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cpu = 300 is not a Fargate CPU value; valid: 256, 512, 1024, 2048, 4096, 8192, 16384"
        );
        assert!(
            TaskSize::fargate(8192, 18432).is_err(),
            "8192 steps by 4 GiB"
        );
    }

    #[test]
    fn free_form_sizes() {
        let size = TaskSize::custom(100, 64).unwrap();
        assert!(!size.is_fargate());
        assert_eq!(size.memory_bytes(), 64 << 20);
        assert_eq!(
            TaskSize::custom(0, 64),
            Err(SizeError::CpuOutOfRange { cpu_units: 0 })
        );
        assert_eq!(
            TaskSize::memory_only(5),
            Err(SizeError::MemoryOutOfRange { memory_mib: 5 })
        );
        assert_eq!(TaskSize::memory_only(64).unwrap().cpu_units(), None);
    }
}
