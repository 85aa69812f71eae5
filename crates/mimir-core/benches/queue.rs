//! The queue order's hot paths: enqueue, dequeue, and the high-priority view on
//! a queue of a million tasks.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use mimir_core::{Aging, Priority, QueueEntry, QueueIndex, WorkTaskType};
use std::hint::black_box;
use std::time::Duration;
use uuid::Uuid;

fn entries(n: u64) -> Vec<QueueEntry> {
    (0..n)
        .map(|seq| QueueEntry {
            id: Uuid::from_u128(u128::from(seq) * 7919),
            task_type: WorkTaskType::ALL[seq as usize % WorkTaskType::COUNT],
            priority: Priority::new(1 + (seq * 2654435761 % 10) as i64).expect("1..=10"),
            seq,
            enqueued_at_us: seq as i64,
            not_before_us: None,
        })
        .collect()
}

fn filled(n: u64, aging: Option<Aging>) -> QueueIndex {
    let mut queue = QueueIndex::new(aging);
    for entry in entries(n) {
        queue.insert(entry);
    }
    queue
}

fn bench(c: &mut Criterion) {
    const N: u64 = 100_000;
    let mut group = c.benchmark_group("queue");
    group.throughput(Throughput::Elements(N));
    group.bench_function("insert 100k", |b| {
        let input = entries(N);
        b.iter_batched(
            || input.clone(),
            |input| {
                let mut queue = QueueIndex::new(None);
                for entry in input {
                    queue.insert(entry);
                }
                queue
            },
            BatchSize::LargeInput,
        )
    });
    for (name, aging) in [
        ("pop 100k", None),
        (
            "pop 100k with aging",
            Some(Aging {
                interval: Duration::from_secs(1),
            }),
        ),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || filled(N, aging),
                |mut queue| {
                    while let Some(entry) = queue.pop(N as i64, |_| true) {
                        black_box(entry);
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();

    let million = filled(1_000_000, None);
    c.bench_function("most urgent 100 of 1M", |b| {
        b.iter(|| black_box(million.most_urgent(Priority::new(5).expect("valid"), 100)))
    });
    c.bench_function("count at least 5 of 1M", |b| {
        b.iter(|| black_box(million.count_at_least(Priority::new(5).expect("valid"))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
