//! The messages between the launcher and the task init, over a `SOCK_SEQPACKET`
//! socket pair: fixed-size records of four native-endian `u32` words, with file
//! descriptors attached where a message carries them. Encoding and decoding never
//! allocate (the task init runs them).

/// Bytes in one message.
pub(crate) const MSG_LEN: usize = 16;

/// Launcher → init.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    /// Clone container `index`. Attached descriptors, in order: the error pipe's write
    /// end, then one per set bit of `stdio_mask` (bit 0 stdin, 1 stdout, 2 stderr),
    /// then `cgroup_fds` cgroup files to join.
    Start {
        index: u32,
        stdio_mask: u32,
        cgroup_fds: u32,
    },
}

/// Init → launcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Container `index` was cloned as `pid` (in the task's pid namespace); its pidfd
    /// is attached.
    Started { index: u32, pid: i32 },
    /// Container `index` could not be cloned.
    StartFailed { index: u32, errno: i32 },
    /// Container `index`'s workload ended with this raw wait status.
    Exited { index: u32, status: i32 },
}

fn words(bytes: &[u8; MSG_LEN]) -> [u32; 4] {
    let mut out = [0u32; 4];
    for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        let mut w = [0u8; 4];
        w.copy_from_slice(chunk);
        *word = u32::from_ne_bytes(w);
    }
    out
}

fn bytes(words: [u32; 4]) -> [u8; MSG_LEN] {
    let mut out = [0u8; MSG_LEN];
    for (chunk, word) in out.chunks_exact_mut(4).zip(words) {
        chunk.copy_from_slice(&word.to_ne_bytes());
    }
    out
}

impl Request {
    pub(crate) fn encode(self) -> [u8; MSG_LEN] {
        match self {
            Request::Start {
                index,
                stdio_mask,
                cgroup_fds,
            } => bytes([1, index, stdio_mask, cgroup_fds]),
        }
    }

    pub(crate) fn decode(raw: &[u8; MSG_LEN]) -> Option<Request> {
        match words(raw) {
            [1, index, stdio_mask, cgroup_fds] if stdio_mask < 8 => Some(Request::Start {
                index,
                stdio_mask,
                cgroup_fds,
            }),
            _ => None,
        }
    }
}

impl Event {
    pub(crate) fn encode(self) -> [u8; MSG_LEN] {
        match self {
            Event::Started { index, pid } => bytes([1, index, pid as u32, 0]),
            Event::StartFailed { index, errno } => bytes([2, index, errno as u32, 0]),
            Event::Exited { index, status } => bytes([3, index, status as u32, 0]),
        }
    }

    pub(crate) fn decode(raw: &[u8; MSG_LEN]) -> Option<Event> {
        match words(raw) {
            [1, index, pid, _] => Some(Event::Started {
                index,
                pid: pid as i32,
            }),
            [2, index, errno, _] => Some(Event::StartFailed {
                index,
                errno: errno as i32,
            }),
            [3, index, status, _] => Some(Event::Exited {
                index,
                status: status as i32,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let r = Request::Start {
            index: 3,
            stdio_mask: 0b101,
            cgroup_fds: 4,
        };
        assert_eq!(Request::decode(&r.encode()), Some(r));
        for e in [
            Event::Started { index: 1, pid: 42 },
            Event::StartFailed {
                index: 0,
                errno: 12,
            },
            Event::Exited {
                index: 2,
                status: 0x0900,
            },
        ] {
            assert_eq!(Event::decode(&e.encode()), Some(e));
        }
        assert_eq!(Request::decode(&[0xff; MSG_LEN]), None);
        assert_eq!(Event::decode(&[0; MSG_LEN]), None);
    }
}
