//! Background work of the live service: retention and the staleness check.

use std::sync::Arc;

use super::Live;
use crate::clock::now_ms;

/// Drops raw readings older than `raw_days` and minute means older than
/// `minute_days` (before each sensor's newest reading) once an hour; hour means stay.
pub fn spawn_pruner(live: Arc<Live>, raw_days: f64, minute_days: f64) {
    let day = 86_400_000.0;
    let (raw_ms, minute_ms) = ((raw_days * day) as i64, (minute_days * day) as i64);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let l = live.clone();
            match tokio::task::spawn_blocking(move || l.store.prune(raw_ms, minute_ms)).await {
                Ok(Ok(n)) if n > 0 => tracing::info!("retention: {n} raw readings dropped"),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!("retention: {e}"),
                Err(e) => tracing::error!("retention: {e}"),
            }
        }
    });
}

/// Runs the staleness check every second for as long as the server lives.
pub fn spawn_stale_checker(live: Arc<Live>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            let l = live.clone();
            match tokio::task::spawn_blocking(move || l.check_stale(now_ms())).await {
                Ok(Err(e)) => tracing::error!("stale check: {e}"),
                Err(e) => tracing::error!("stale check: {e}"),
                Ok(Ok(_)) => {}
            }
        }
    });
}
