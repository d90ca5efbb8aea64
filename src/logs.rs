//! The log-driver role: containers' output, line by line, tagged with the container
//! and the stream, delivered to a sink the embedding runtime provides.

use std::fmt;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        })
    }
}

/// One line a container wrote to a stream set to [`Stdio::Log`](crate::Stdio::Log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine<'a> {
    /// The container's name.
    pub container: &'a str,
    /// The stream.
    pub stream: LogStream,
    /// The line, without its newline (a last line without one is delivered at EOF;
    /// a line longer than 64 KiB is delivered in 64 KiB pieces).
    pub line: &'a [u8],
}

/// Receives log lines; called from the task's log thread, in the order each stream
/// produced them.
pub type LogSink = Arc<dyn Fn(&LogLine<'_>) + Send + Sync>;

/// The sink used when a task sets none: the launcher's stdout or stderr, each line
/// prefixed with `[container] `.
pub(crate) fn default_sink() -> LogSink {
    Arc::new(|line: &LogLine<'_>| {
        let mut text = Vec::with_capacity(line.container.len() + line.line.len() + 4);
        text.push(b'[');
        text.extend_from_slice(line.container.as_bytes());
        text.extend_from_slice(b"] ");
        text.extend_from_slice(line.line);
        text.push(b'\n');
        // A closed stdout/stderr of the launcher loses the line, as it would have lost
        // the container's own write.
        let _ = match line.stream {
            LogStream::Stdout => std::io::stdout().lock().write_all(&text),
            LogStream::Stderr => std::io::stderr().lock().write_all(&text),
        };
    })
}

/// One stream being read.
pub(crate) struct LogSource {
    pub container: Arc<str>,
    pub stream: LogStream,
    pub file: File,
}

const MAX_LINE: usize = 64 * 1024;

/// Reads every source until EOF on all of them (every writer gone), handing complete
/// lines to `sink`. Runs on its own thread.
pub(crate) fn pump(sources: Vec<LogSource>, sink: LogSink) {
    struct Open {
        source: LogSource,
        pending: Vec<u8>,
    }
    let mut open: Vec<Open> = sources
        .into_iter()
        .map(|source| Open {
            source,
            pending: Vec::new(),
        })
        .collect();
    let mut buf = vec![0u8; 16 * 1024];
    while !open.is_empty() {
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .map(|o| libc::pollfd {
                fd: o.source.file.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if crate::sys::poll(&mut fds, -1).is_err() {
            return;
        }
        let mut closed = Vec::new();
        for (index, pfd) in fds.iter().enumerate() {
            if pfd.revents == 0 {
                continue;
            }
            let entry = &mut open[index];
            match entry.source.file.read(&mut buf) {
                Ok(0) | Err(_) => closed.push(index),
                Ok(n) => {
                    entry.pending.extend_from_slice(&buf[..n]);
                    emit(
                        entry.source.container.as_ref(),
                        entry.source.stream,
                        &mut entry.pending,
                        &sink,
                    );
                }
            }
        }
        for index in closed.into_iter().rev() {
            let mut entry = open.swap_remove(index);
            if !entry.pending.is_empty() {
                sink(&LogLine {
                    container: &entry.source.container,
                    stream: entry.source.stream,
                    line: &entry.pending,
                });
                entry.pending.clear();
            }
        }
    }
}

/// Delivers every complete line of `pending` (and 64 KiB pieces of an overlong one),
/// keeping the incomplete rest.
fn emit(container: &str, stream: LogStream, pending: &mut Vec<u8>, sink: &LogSink) {
    let mut start = 0;
    while let Some(pos) = pending[start..].iter().position(|b| *b == b'\n') {
        sink(&LogLine {
            container,
            stream,
            line: &pending[start..start + pos],
        });
        start += pos + 1;
    }
    while pending.len() - start >= MAX_LINE {
        sink(&LogLine {
            container,
            stream,
            line: &pending[start..start + MAX_LINE],
        });
        start += MAX_LINE;
    }
    pending.drain(..start);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn lines_are_split_and_tagged() {
        let seen = Arc::new(Mutex::new(Vec::<(String, LogStream, Vec<u8>)>::new()));
        let record = seen.clone();
        let sink: LogSink = Arc::new(move |l: &LogLine<'_>| {
            record
                .lock()
                .unwrap()
                .push((l.container.to_string(), l.stream, l.line.to_vec()));
        });
        let mut pending = b"one\ntwo\nthr".to_vec();
        emit("app", LogStream::Stdout, &mut pending, &sink);
        assert_eq!(pending, b"thr");
        let (read, write) = nix::unistd::pipe().unwrap();
        File::from(write).write_all(b"a\nb").unwrap();
        pump(
            vec![LogSource {
                container: Arc::from("side"),
                stream: LogStream::Stderr,
                file: File::from(read),
            }],
            sink,
        );
        let seen = seen.lock().unwrap();
        let text: Vec<String> = seen
            .iter()
            .map(|(c, s, l)| format!("{c}/{s}/{}", String::from_utf8_lossy(l)))
            .collect();
        assert_eq!(
            text,
            [
                "app/stdout/one",
                "app/stdout/two",
                "side/stderr/a",
                "side/stderr/b"
            ]
        );
    }
}
