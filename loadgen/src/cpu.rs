//! CPU time of this process, for the loadgen's own cost per request.
//!
//! The total comes from the process CPU clock, which the scheduler keeps in
//! nanoseconds. `/proc/self/stat` counts user and system time in 10 ms ticks
//! only, too coarse for the share of one core a 1000 qps run costs, so it is
//! used for the split between the two and nothing else.

use std::time::Duration;

/// CPU time of all threads of this process since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub total: Duration,
    /// User-space time as `/proc` counts it (10 ms ticks); `None` without procfs.
    user_ticks: Option<Duration>,
    /// Kernel time as `/proc` counts it (10 ms ticks); `None` without procfs.
    system_ticks: Option<Duration>,
}

impl CpuTime {
    /// Reads this process's CPU time now.
    pub fn now() -> CpuTime {
        let clock = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let total = Duration::new(clock.tv_sec as u64, clock.tv_nsec as u32);
        let (user_ticks, system_ticks) = match proc_ticks() {
            Some((user, system)) => (Some(user), Some(system)),
            None => (None, None),
        };
        CpuTime {
            total,
            user_ticks,
            system_ticks,
        }
    }

    /// Returns the CPU time used between `earlier` and `self`.
    pub fn since(self, earlier: CpuTime) -> CpuUsed {
        let total = self.total.saturating_sub(earlier.total);
        let ticks = |now: Option<Duration>, then: Option<Duration>| {
            now.zip(then).map(|(now, then)| now.saturating_sub(then))
        };
        let user = ticks(self.user_ticks, earlier.user_ticks);
        let system = ticks(self.system_ticks, earlier.system_ticks);
        // The tick counts give the ratio in which the precise total divides.
        // When they counted nothing (under a tick of CPU) the split is unknown.
        let user = match (user, system) {
            (Some(user), Some(system)) if !(user + system).is_zero() => {
                Some(total.mul_f64(user.as_secs_f64() / (user + system).as_secs_f64()))
            }
            _ => None,
        };
        CpuUsed { total, user }
    }
}

/// CPU time a process used over an interval.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuUsed {
    /// User and system time together, to the nanosecond.
    pub total: Duration,
    /// The user-space part, estimated from `/proc`'s tick counts.
    pub user: Option<Duration>,
}

impl CpuUsed {
    /// Returns the kernel part of the total, when the split is known.
    pub fn system(&self) -> Option<Duration> {
        self.user.map(|user| self.total.saturating_sub(user))
    }
}

/// Clock ticks per second of `/proc` CPU times. Linux fixes USER_HZ at 100
/// on every architecture it exports to user space.
const USER_HZ: u32 = 100;

/// Returns user and system time from `/proc/self/stat`.
fn proc_ticks() -> Option<(Duration, Duration)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in brackets may contain spaces, so fields are counted
    // from the closing bracket: utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u32 = fields.next()?.parse().ok()?;
    let system: u32 = fields.next()?.parse().ok()?;
    let tick = Duration::from_secs(1) / USER_HZ;
    Some((tick * user, tick * system))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_loop_counts_as_cpu_time() {
        let before = CpuTime::now();
        let started = std::time::Instant::now();
        let mut spins = 0u64;
        while started.elapsed() < Duration::from_millis(30) {
            spins = std::hint::black_box(spins + 1);
        }
        let used = CpuTime::now().since(before);

        // Other tests run on other threads of this process, so only the lower
        // bound is this thread's: a shared machine may take some of its time.
        assert!(used.total >= Duration::from_millis(5), "{used:?}");
    }
}
