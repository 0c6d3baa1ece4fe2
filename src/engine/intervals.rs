//! Worker threads hand their one-second latency histograms to the coordinator.

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Clock, IntervalHistograms};

/// Where a worker thread sends its one-second latency histograms.
pub(crate) type IntervalSender = tokio::sync::mpsc::UnboundedSender<IntervalHistograms>;

/// On a worker thread: every second (on the run's second boundaries) hand the recorder's interval
/// histograms to the coordinator, until `done`; then once more with what is left.
pub(crate) async fn send_intervals(
    take: impl Fn() -> Option<IntervalHistograms>,
    clock: Clock,
    start_us: u64,
    tx: IntervalSender,
    done: CancellationToken,
) {
    let mut k: u64 = 1;
    loop {
        let at = Instant::from_std(clock.instant_at(start_us + k * 1_000_000));
        tokio::select! {
            _ = done.cancelled() => break,
            _ = tokio::time::sleep_until(at) => {}
        }
        if let Some(h) = take() {
            let _ = tx.send(h);
        }
        k += 1;
    }
    if let Some(h) = take() {
        let _ = tx.send(h);
    }
}
