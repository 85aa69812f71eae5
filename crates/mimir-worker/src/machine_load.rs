//! How busy the machine is: the share of CPU time spent working since the last
//! look (`/proc/stat`) and the memory available (`/proc/meminfo`). Unknown
//! (`None`) where those files do not exist.

/// Reads the machine's CPU busy share between two looks.
#[derive(Debug, Default)]
pub struct CpuBusy {
    last: Option<(u64, u64)>,
}

impl CpuBusy {
    /// Share of CPU time busy since the previous call; `None` on the first.
    pub fn sample(&mut self) -> Option<f64> {
        let now = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|stat| totals(&stat))?;
        let before = self.last.replace(now)?;
        busy_share(before, now)
    }
}

/// `(busy, total)` jiffies of the `cpu` line of `/proc/stat`.
fn totals(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map_while(|f| f.parse().ok())
        .collect();
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait are not work.
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

fn busy_share(before: (u64, u64), now: (u64, u64)) -> Option<f64> {
    let total = now.1.checked_sub(before.1)?;
    let busy = now.0.checked_sub(before.0)?;
    (total > 0).then(|| busy as f64 / total as f64)
}

/// Memory the machine has available for new work, in bytes.
pub fn memory_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_busy_share_from_the_cpu_line() {
        let before = totals("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(before, (200, 1000));
        let after = totals("cpu  400 0 100 1300 100 0 0 0 0 0\n").unwrap();
        // 300 of the 900 jiffies since were busy.
        let share = busy_share(before, after).unwrap();
        assert!((share - 1.0 / 3.0).abs() < 1e-9, "{share}");
        assert_eq!(busy_share(after, after), None, "no time passed");
        assert_eq!(totals("intr 1 2 3\n"), None);
    }

    #[test]
    fn this_machine_reports_its_load() {
        if !std::path::Path::new("/proc/stat").exists() {
            return;
        }
        let mut cpu = CpuBusy::default();
        assert_eq!(cpu.sample(), None, "the first look has nothing to compare");
        // Burn a little CPU so some jiffies pass.
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(50) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let share = cpu.sample().expect("a share after time passed");
        assert!((0.0..=1.0).contains(&share), "{share}");
        assert!(memory_available().is_some_and(|bytes| bytes > 0));
    }
}
