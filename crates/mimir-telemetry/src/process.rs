//! Process metrics read from `/proc/self` at scrape time, with the names the
//! Prometheus client libraries use (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, ...), so stock dashboards work.
//! Elsewhere than Linux the collector reports nothing.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Page size and clock ticks of Linux on the platforms we ship for.
const PAGE_SIZE: f64 = 4096.0;
const TICKS_PER_SECOND: f64 = 100.0;

/// Reads CPU time, memory, open files and start time of this process.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// What `/proc/self` tells.
#[derive(Debug, Default, PartialEq)]
struct Sample {
    cpu_seconds: f64,
    resident_bytes: f64,
    virtual_bytes: f64,
    start_time_seconds: f64,
    open_fds: f64,
    max_fds: f64,
}

impl Sample {
    fn read() -> Option<Sample> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let mut sample = parse_stat(&stat, &boot)?;
        sample.open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as f64;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        sample.max_fds = parse_max_fds(&limits).unwrap_or_default();
        Some(sample)
    }
}

/// Parses `/proc/self/stat` (fields after the command name, which may hold
/// spaces) and the boot time from `/proc/stat`.
fn parse_stat(stat: &str, proc_stat: &str) -> Option<Sample> {
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field numbers of proc(5), minus the 3 before this slice.
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    let boot_time = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse::<f64>()
        .ok()?;
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
        start_time_seconds: boot_time + field(22)? / TICKS_PER_SECOND,
        virtual_bytes: field(23)?,
        resident_bytes: field(24)? * PAGE_SIZE,
        open_fds: 0.0,
        max_fds: 0.0,
    })
}

/// CPU time and resident memory of another process on this machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub resident_bytes: f64,
}

/// Reads `/proc/<pid>/stat`; `None` when the process is gone (or elsewhere
/// than Linux).
pub fn usage(pid: u32) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let sample = parse_stat(&stat, &boot)?;
    Some(Usage {
        cpu_seconds: sample.cpu_seconds,
        resident_bytes: sample.resident_bytes,
    })
}

fn parse_max_fds(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = Sample::read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time spent, in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.virtual_bytes,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch, in seconds",
                s.start_time_seconds,
            ),
            ("process_open_fds", "Open file descriptors", s.open_fds),
            (
                "process_max_fds",
                "Most open file descriptors allowed",
                s.max_fds,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_spaces_in_the_command_name() {
        let stat = "4242 (mimir aip) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 1000 123456789 2048 18446744073709551615";
        let proc_stat = "cpu 1 2 3\nbtime 1700000000\nprocesses 5\n";
        let sample = parse_stat(stat, proc_stat).expect("parses");
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.start_time_seconds, 1_700_000_010.0);
        assert_eq!(sample.virtual_bytes, 123_456_789.0);
        assert_eq!(sample.resident_bytes, 2048.0 * 4096.0);
    }

    #[test]
    fn parses_the_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n";
        assert_eq!(parse_max_fds(limits), Some(1024.0));
    }

    #[test]
    fn reads_another_process_by_pid() {
        let this = usage(std::process::id()).expect("this process is alive");
        assert!(this.resident_bytes > 0.0);
        assert_eq!(usage(u32::MAX), None, "no such process");
    }

    #[test]
    fn reads_this_process() {
        let sample = Sample::read().expect("/proc is mounted");
        assert!(sample.resident_bytes > 0.0);
        assert!(sample.open_fds >= 3.0);
    }
}
