//! Work too heavy for the request threads (box queries, building and compressing
//! large answers): a bounded pool, one task per core at a time, so tiles and other
//! light answers never queue behind it.

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use crate::ApiError;

fn permits() -> &'static Semaphore {
    static POOL: OnceLock<Semaphore> = OnceLock::new();
    POOL.get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, usize::from)))
}

/// Runs `f` on a blocking thread once a permit is free, as the current caller.
pub async fn run<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
    let _permit = permits().acquire().await.map_err(|e| ApiError::Internal(e.to_string()))?;
    let caller = crate::access::current();
    tokio::task::spawn_blocking(move || crate::access::as_caller(caller, f))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}
