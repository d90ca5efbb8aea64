//! A started task: waiting, signalling, reading its streams, tearing it down.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;

use super::ParentStdio;
use crate::cgroup::{CgroupStats, TaskCgroup};
use crate::error::Error;
use crate::sys::{self, WaitOutcome};
use crate::task::EnforcementReport;

/// How a task's workload ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal (not for running out of memory).
    Signaled(i32),
    /// The kernel's OOM killer killed it for reaching the task's memory limit.
    OutOfMemory,
}

impl ExitStatus {
    /// Whether it exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }

    /// The exit code, if it exited.
    pub fn code(&self) -> Option<i32> {
        match self {
            ExitStatus::Exited(code) => Some(*code),
            _ => None,
        }
    }

    /// The signal that killed it (`SIGKILL` for an out-of-memory kill).
    pub fn signal(&self) -> Option<i32> {
        match self {
            ExitStatus::Signaled(sig) => Some(*sig),
            ExitStatus::OutOfMemory => Some(libc::SIGKILL),
            ExitStatus::Exited(_) => None,
        }
    }

    /// Whether the OOM killer ended it.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, ExitStatus::OutOfMemory)
    }

    /// The status as a shell reports it: the code, or 128 + the signal number.
    pub fn shell_code(&self) -> i32 {
        match self {
            ExitStatus::Exited(code) => *code,
            ExitStatus::Signaled(sig) => 128 + sig,
            ExitStatus::OutOfMemory => 128 + libc::SIGKILL,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Exited(code) => write!(f, "exit code {code}"),
            ExitStatus::Signaled(sig) => {
                let name = nix::sys::signal::Signal::try_from(*sig)
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|_| format!("signal {sig}"));
                write!(f, "killed by {name}")
            }
            ExitStatus::OutOfMemory => f.write_str("killed by the OOM killer: out of memory"),
        }
    }
}

/// What a finished task printed, with how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// How the workload ended.
    pub status: ExitStatus,
    /// Its standard output, if piped.
    pub stdout: Vec<u8>,
    /// Its standard error, if piped.
    pub stderr: Vec<u8>,
}

/// A running task, like [`std::process::Child`]: wait for it, signal it, read its
/// streams. Dropping it kills every process of the task and removes its cgroup.
#[derive(Debug)]
pub struct RunningTask {
    pid: libc::pid_t,
    pidfd: OwnedFd,
    cgroup: Option<TaskCgroup>,
    status: Option<ExitStatus>,
    /// The workload's stdin, when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdin: Option<File>,
    /// The workload's stdout, when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stdout: Option<File>,
    /// The workload's stderr, when [`Stdio::Piped`](crate::Stdio::Piped).
    pub stderr: Option<File>,
    report: EnforcementReport,
}

impl RunningTask {
    pub(crate) fn new(
        pid: libc::pid_t,
        pidfd: OwnedFd,
        cgroup: TaskCgroup,
        stdio: ParentStdio,
        report: EnforcementReport,
    ) -> Self {
        RunningTask {
            pid,
            pidfd,
            cgroup: Some(cgroup),
            status: None,
            stdin: stdio.stdin,
            stdout: stdio.stdout,
            stderr: stdio.stderr,
            report,
        }
    }

    /// The host pid of the workload (pid 1 inside the task).
    pub fn id(&self) -> u32 {
        self.pid as u32
    }

    /// What was really enforced for this task.
    pub fn report(&self) -> &EnforcementReport {
        &self.report
    }

    /// CPU, memory and pids usage from the task cgroup.
    pub fn stats(&self) -> Result<CgroupStats, Error> {
        match &self.cgroup {
            Some(cgroup) => Ok(cgroup.stats()?),
            None => Err(Error::host("read stats", Errno::ESRCH)),
        }
    }

    /// Waits for the workload to end. Closes its stdin first, as
    /// [`std::process::Child::wait`] does.
    pub fn wait(&mut self) -> Result<ExitStatus, Error> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        // A blocking waitid reports an exit or fails; it never answers "running".
        let outcome = sys::waitid_pidfd(self.pidfd.as_raw_fd(), 0)
            .and_then(|o| o.ok_or(Errno::ECHILD))
            .map_err(|e| Error::host(format!("wait for task process {}", self.pid), e))?;
        Ok(self.finish(outcome))
    }

    /// The status if the workload has ended, without blocking.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>, Error> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        match sys::waitid_pidfd(self.pidfd.as_raw_fd(), libc::WNOHANG)
            .map_err(|e| Error::host(format!("wait for task process {}", self.pid), e))?
        {
            None => Ok(None),
            Some(outcome) => Ok(Some(self.finish(outcome))),
        }
    }

    /// Records how the workload ended.
    fn finish(&mut self, outcome: WaitOutcome) -> ExitStatus {
        let oom_killed = || self.cgroup.as_ref().is_some_and(|c| c.oom_kills() > 0);
        let status = match outcome {
            WaitOutcome::Exited(code) => ExitStatus::Exited(code),
            WaitOutcome::Signaled(libc::SIGKILL) if oom_killed() => ExitStatus::OutOfMemory,
            WaitOutcome::Signaled(sig) => ExitStatus::Signaled(sig),
        };
        self.status = Some(status);
        status
    }

    /// Sends `signal` to the workload. The workload is pid 1 of its namespace, so
    /// only signals it handles, and `SIGKILL`, have an effect.
    pub fn signal(&self, signal: i32) -> Result<(), Error> {
        if self.status.is_some() {
            return Ok(());
        }
        match sys::pidfd_send_signal(self.pidfd.as_raw_fd(), signal) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(Error::host(format!("signal task process {}", self.pid), e)),
        }
    }

    /// Kills every process of the task (`SIGKILL` to its pid 1, which takes its whole
    /// pid namespace with it). Does not wait.
    pub fn kill(&mut self) -> Result<(), Error> {
        self.signal(libc::SIGKILL)
    }

    /// Waits for the end and collects the piped output.
    pub fn wait_with_output(mut self) -> Result<Output, Error> {
        drop(self.stdin.take());
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let err_reader = stderr.map(|mut f| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = f.read_to_end(&mut buf);
                buf
            })
        });
        let mut out = Vec::new();
        if let Some(mut f) = stdout {
            f.read_to_end(&mut out)
                .map_err(|e| Error::host("read the task's stdout", e))?;
        }
        let err = err_reader
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        let status = self.wait()?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }
}

impl Drop for RunningTask {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = sys::pidfd_send_signal(self.pidfd.as_raw_fd(), libc::SIGKILL);
            let _ = sys::waitid_pidfd(self.pidfd.as_raw_fd(), 0);
        }
        if let Some(cgroup) = self.cgroup.take() {
            if let Err(err) = cgroup.destroy() {
                tracing::warn!(error = %err, "task cgroup not removed");
            }
        }
    }
}
