//! What the VMM writes, captured while it runs: the guest's serial console (the VMM's
//! standard output) and the VMM's own messages (its standard error).

use std::fs::File;
use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

/// The most a log keeps, in bytes; what comes after is counted and dropped.
pub const MAX_LOG_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
struct State {
    bytes: Vec<u8>,
    dropped: u64,
    closed: bool,
}

/// A growing byte log filled by a reader thread, which callers can wait on.
#[derive(Debug, Clone, Default)]
pub struct ConsoleLog {
    shared: Arc<(Mutex<State>, Condvar)>,
}

impl ConsoleLog {
    /// An empty, open log.
    pub fn new() -> Self {
        ConsoleLog::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread that panicked leaves a consistent buffer behind.
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Everything captured so far.
    pub fn contents(&self) -> Vec<u8> {
        self.lock().bytes.clone()
    }

    /// Everything captured so far, as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.lock().bytes).into_owned()
    }

    /// Bytes dropped past [`MAX_LOG_BYTES`].
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// Whether the writer closed its end (the VMM exited).
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Appends bytes and wakes the waiters.
    pub fn push(&self, data: &[u8]) {
        let mut state = self.lock();
        let room = MAX_LOG_BYTES.saturating_sub(state.bytes.len());
        let take = room.min(data.len());
        state.bytes.extend_from_slice(&data[..take]);
        state.dropped += (data.len() - take) as u64;
        drop(state);
        self.shared.1.notify_all();
    }

    /// Marks the log closed and wakes the waiters.
    pub fn close(&self) {
        self.lock().closed = true;
        self.shared.1.notify_all();
    }

    /// Waits until `needle` appears, the log closes, or `deadline` passes. Returns
    /// whether it appeared.
    pub fn wait_for(&self, needle: &[u8], deadline: Instant) -> bool {
        if needle.is_empty() {
            return true;
        }
        let mut scanned: usize = 0;
        let mut state = self.lock();
        loop {
            let start = scanned.saturating_sub(needle.len() - 1);
            if state.bytes[start..]
                .windows(needle.len())
                .any(|w| w == needle)
            {
                return true;
            }
            scanned = state.bytes.len();
            let now = Instant::now();
            if state.closed || now >= deadline {
                return false;
            }
            state = match self.shared.1.wait_timeout(state, deadline - now) {
                Ok((guard, _)) => guard,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Starts a thread that copies `source` into the log until end of file.
    pub(crate) fn capture(&self, mut source: File) -> JoinHandle<()> {
        let log = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match source.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => log.push(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            log.close();
        })
    }
}
