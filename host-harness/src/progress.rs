//! The guest's stderr, turned into progress lines for the host. Bounded: a
//! guest cannot make the host buffer or print more than [`MAX_PROGRESS_BYTES`].

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Receives one line per progress event of a run (attempts, waits, host
/// refusals); never secrets.
pub type ProgressFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Most bytes of guest stderr forwarded per run; the rest is dropped.
pub const MAX_PROGRESS_BYTES: usize = 64 * 1024;
/// Longest line kept; longer lines are cut.
const MAX_LINE: usize = 4096;

struct Lines {
    sink: ProgressFn,
    partial: Vec<u8>,
    seen: usize,
    truncated: bool,
}

impl Lines {
    /// Nothing seen yet: lines go to `sink`.
    fn new(sink: ProgressFn) -> Self {
        Lines {
            sink,
            partial: Vec::new(),
            seen: 0,
            truncated: false,
        }
    }
}

/// A `wasi:cli/stderr` that calls a function per complete line.
#[derive(Clone)]
pub struct ProgressStream {
    lines: Arc<Mutex<Lines>>,
}

impl ProgressStream {
    /// Forwards lines to `sink`.
    pub fn new(sink: ProgressFn) -> Self {
        ProgressStream {
            lines: Arc::new(Mutex::new(Lines::new(sink))),
        }
    }

    /// Forwards the lines of the next run to `sink`, with a fresh budget of
    /// [`MAX_PROGRESS_BYTES`] (an instance kept for its tenant's next run).
    pub fn reset(&self, sink: ProgressFn) {
        *self.lock() = Lines::new(sink);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn accept(&self, buf: &[u8]) {
        let mut lines = self.lock();
        let room = MAX_PROGRESS_BYTES.saturating_sub(lines.seen);
        lines.seen = lines.seen.saturating_add(buf.len());
        let kept = &buf[..buf.len().min(room)];
        for &b in kept {
            if b == b'\n' {
                let line = std::mem::take(&mut lines.partial);
                (lines.sink)(&String::from_utf8_lossy(&line));
            } else if lines.partial.len() < MAX_LINE {
                lines.partial.push(b);
            }
        }
        if kept.len() < buf.len() && !lines.truncated {
            lines.truncated = true;
            (lines.sink)("(further step output dropped: over 64 KiB)");
        }
    }
}

impl IsTerminal for ProgressStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ProgressStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    /// Written to directly: the default adapter would put a buffer and a
    /// background task between the guest and [`ProgressStream::accept`],
    /// a task hand-off per progress line.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// Always writable: every write is taken (and bounded) at once.
impl OutputStream for ProgressStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.accept(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ProgressStream {
    async fn ready(&mut self) {}
}

impl AsyncWrite for ProgressStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.accept(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_lines_and_bounds_output() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s2 = seen.clone();
        let stream = ProgressStream::new(Arc::new(move |l: &str| {
            s2.lock().expect("lock").push(l.to_string())
        }));
        stream.accept(b"attempt 1: 200\nattem");
        stream.accept(b"pt 2\n");
        stream.accept(&vec![b'x'; MAX_PROGRESS_BYTES]);
        stream.accept(b"\nlate\n");
        let seen = seen.lock().expect("lock");
        assert_eq!(seen[..2], ["attempt 1: 200", "attempt 2"]);
        assert_eq!(seen.len(), 3, "{:?}", &seen[2..]);
        assert!(seen[2].contains("dropped"));
    }
}
