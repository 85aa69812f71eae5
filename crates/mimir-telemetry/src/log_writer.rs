//! Where formatted log lines go: stderr, one write per line, except on a
//! thread inside [`batched`], whose lines are gathered and written together
//! when the batch ends. The task event recorder logs a whole commit's
//! lifecycle lines that way, so tens of thousands of lines a second cost a few
//! hundred writes, not one system call each. Lines stay whole and in order;
//! a batch is held only while the thread works through it (microseconds).

use std::cell::RefCell;
use std::io::Write;
use tracing_subscriber::fmt::MakeWriter;

/// Bytes a batch gathers before writing early, bounding what it holds.
const FLUSH_AT: usize = 256 * 1024;

/// A thread's batch: whether one is open, and its lines. The buffer is kept
/// from one batch to the next, so a batch does not grow it again from empty.
struct Batch {
    open: bool,
    lines: Vec<u8>,
}

thread_local! {
    static BATCH: RefCell<Batch> = const {
        RefCell::new(Batch {
            open: false,
            lines: Vec::new(),
        })
    };
}

/// Runs `work`, writing the log lines it produces on this thread to stderr
/// together when it ends (or every [`FLUSH_AT`] bytes).
pub fn batched<R>(work: impl FnOnce() -> R) -> R {
    let nested = BATCH.with(|b| std::mem::replace(&mut b.borrow_mut().open, true));
    // A nested batch joins the outer one, which writes.
    if nested {
        return work();
    }
    let result = work();
    BATCH.with(|b| {
        let mut batch = b.borrow_mut();
        write_stderr(&batch.lines);
        batch.lines.clear();
        batch.open = false;
    });
    result
}

fn write_stderr(bytes: &[u8]) {
    if !bytes.is_empty() {
        // Nowhere to report a failed log write.
        let _ = std::io::stderr().lock().write_all(bytes);
    }
}

/// The formatter's writer: see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

/// One line's writer.
#[derive(Debug)]
pub struct LineWriter;

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter
    }
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let unbatched = BATCH.with(|b| {
            let Batch { open, lines } = &mut *b.borrow_mut();
            if !*open {
                return true;
            }
            lines.extend_from_slice(buf);
            if lines.len() >= FLUSH_AT {
                write_stderr(lines);
                lines.clear();
            }
            false
        });
        if unbatched {
            std::io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch_len() -> Option<usize> {
        BATCH.with(|b| {
            let batch = b.borrow();
            batch.open.then_some(batch.lines.len())
        })
    }

    #[test]
    fn lines_in_a_batch_are_held_until_it_ends() {
        assert_eq!(batch_len(), None);
        batched(|| {
            LineWriter.write_all(b"one\n").unwrap();
            LineWriter.write_all(b"two\n").unwrap();
            assert_eq!(batch_len(), Some(8));
            batched(|| LineWriter.write_all(b"three\n").unwrap());
            assert_eq!(batch_len(), Some(14), "a nested batch joins the outer one");
        });
        assert_eq!(batch_len(), None, "written and closed");
    }

    #[test]
    fn a_large_batch_is_written_early() {
        batched(|| {
            let line = vec![b'x'; 1024];
            for _ in 0..(FLUSH_AT / 1024 + 1) {
                LineWriter.write_all(&line).unwrap();
            }
            assert!(batch_len().is_some_and(|n| n < FLUSH_AT));
        });
    }
}
