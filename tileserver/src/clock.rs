//! The server's one clock: milliseconds since the Unix epoch, for readings, jobs,
//! audit records and token expiry alike.

/// Now, in milliseconds since 1970-01-01T00:00:00Z (0 on a clock before it).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
