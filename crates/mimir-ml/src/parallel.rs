//! Splitting work over rows between the cores, with results in row order so
//! they do not depend on which thread finished first.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Rows per piece of work. Fixed, not derived from the core count, so sums
/// over pieces add up in the same order on every machine and a model
/// trains to the same bytes on a 2-core worker and a 64-core one.
const CHUNK: usize = 8_192;

/// The cores to use.
pub fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |t| t.get())
}

/// `work` over `0..n` in pieces of [`CHUNK`] rows spread over the cores;
/// the results in row order.
pub fn parts<T: Send>(n: usize, work: impl Fn(Range<usize>) -> T + Sync) -> Vec<T> {
    let chunks = n.div_ceil(CHUNK).max(1);
    let range = |c: usize| c * CHUNK..((c + 1) * CHUNK).min(n);
    let threads = threads().min(chunks);
    if threads <= 1 {
        return (0..chunks).map(|c| work(range(c))).collect();
    }
    let work = &work;
    // Pieces are claimed one at a time, so a thread the scheduler holds
    // back does not leave the others idle at the end.
    let next = AtomicUsize::new(0);
    let next = &next;
    let mut slots: Vec<Option<T>> = (0..chunks).map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut done = Vec::new();
                    loop {
                        let c = next.fetch_add(1, Ordering::Relaxed);
                        if c >= chunks {
                            break done;
                        }
                        done.push((c, work(range(c))));
                    }
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (c, part) in done {
                        slots[c] = Some(part);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    slots.into_iter().flatten().collect()
}

/// `work` over `0..n` split between the cores, its outputs concatenated in
/// row order.
pub fn in_parallel<T: Send>(n: usize, work: impl Fn(Range<usize>) -> Vec<T> + Sync) -> Vec<T> {
    let mut out = Vec::with_capacity(n);
    for part in parts(n, work) {
        out.extend(part);
    }
    out
}
