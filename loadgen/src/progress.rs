//! A one-line progress bar on stderr while a load run is sending.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Time between redraws.
const REFRESH: Duration = Duration::from_millis(200);

/// Width of the bar in characters.
const BAR_WIDTH: usize = 30;

/// A running progress bar; [`ProgressBar::finish`] erases it.
pub struct ProgressBar {
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl ProgressBar {
    /// Starts drawing when stderr is a terminal, and returns `None` otherwise,
    /// so logs and CI output stay clean. `completed` is the engine's counter.
    pub fn start(
        completed: Arc<AtomicU64>,
        duration: Duration,
        requests: Option<u64>,
    ) -> Option<ProgressBar> {
        if !std::io::stderr().is_terminal() {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(draw(completed, duration, requests, stop.clone()));
        Some(ProgressBar { stop, task })
    }

    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\r\x1b[2K");
        let _ = stderr.flush();
    }
}

async fn draw(
    completed: Arc<AtomicU64>,
    duration: Duration,
    requests: Option<u64>,
    stop: Arc<AtomicBool>,
) {
    let started = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(REFRESH).await;
        let done = completed.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        let line = render(done, elapsed, duration, requests);
        let mut stderr = std::io::stderr();
        let _ = write!(stderr, "\r{line}");
        let _ = stderr.flush();
    }
}

/// Returns the bar's text: the larger of the time and request fractions.
pub fn render(done: u64, elapsed: Duration, duration: Duration, requests: Option<u64>) -> String {
    let by_time = if duration.is_zero() {
        0.0
    } else {
        elapsed.as_secs_f64() / duration.as_secs_f64()
    };
    let by_count = requests.map_or(0.0, |total| done as f64 / total.max(1) as f64);
    let fraction = by_time.max(by_count).clamp(0.0, 1.0);
    let filled = (fraction * BAR_WIDTH as f64).round() as usize;
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    format!(
        "[{}{}] {:>3.0}% {done} requests, {rate:.0} qps",
        "#".repeat(filled),
        "-".repeat(BAR_WIDTH - filled),
        fraction * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_uses_larger_fraction() {
        let line = render(
            50,
            Duration::from_secs(1),
            Duration::from_secs(10),
            Some(100),
        );

        assert!(line.starts_with(&format!("[{}{}]", "#".repeat(15), "-".repeat(15))));
        assert!(line.contains(" 50% 50 requests, 50 qps"), "{line}");
    }
}
