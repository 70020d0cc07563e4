//! Live sensors: what a sensor is, a reading, and how readings move a sensor between
//! ok, warn, alarm and stale. Shared by the server (which decides states and raises
//! alerts) and the viewer (which colours markers), so both read thresholds alike.

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SensorError {
    #[error("field '{field}': {reason}")]
    Field { field: &'static str, reason: String },
    #[error("time '{0}' is not RFC 3339 (e.g. 2026-11-22T08:00:00Z)")]
    Time(String),
}

fn bad(field: &'static str, reason: impl Into<String>) -> SensorError {
    SensorError::Field { field, reason: reason.into() }
}

/// A registered sensor. Thresholds compare the value: with `warn < alarm` high values
/// are bad (temperature), with `warn > alarm` low values are (water pressure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    pub id: String,
    pub kind: String,
    pub unit: String,
    pub lon: f64,
    pub lat: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<f64>,
    /// A building feature id or an IFC GlobalId the sensor is attached to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm: Option<f64>,
    /// How far back past a threshold a value must come before the state drops.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hysteresis: Option<f64>,
    /// Expected seconds between readings; stale after `STALE_PERIODS` of silence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
}

/// Readings missed in a row before a sensor counts as stale.
pub const STALE_PERIODS: f64 = 3.0;
/// Period assumed when a sensor does not declare one.
pub const DEFAULT_PERIOD_S: f64 = 60.0;

fn finite(field: &'static str, v: Option<f64>) -> Result<(), SensorError> {
    match v {
        Some(x) if !x.is_finite() => Err(bad(field, "must be a finite number")),
        _ => Ok(()),
    }
}

impl Sensor {
    /// Checks a sensor as it arrives over the API.
    /// The clearance a caller needs to see this sensor, its readings and alerts
    /// (beyond that of the sensors layer); an unreadable label fails closed.
    pub fn clearance_needed(&self) -> crate::catalogue::Classification {
        self.classification.as_deref().map_or(crate::catalogue::Classification::Public, |c| {
            c.parse().unwrap_or(crate::catalogue::Classification::Restricted)
        })
    }

    pub fn validate(&self) -> Result<(), SensorError> {
        if let Some(c) = &self.classification
            && c.parse::<crate::catalogue::Classification>().is_err()
        {
            return Err(bad("classification", "public, internal or restricted"));
        }
        let id_ok = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
        if !id_ok {
            return Err(bad("id", "1-64 characters of A-Z a-z 0-9 - _ . :"));
        }
        for (field, value) in [("kind", &self.kind), ("unit", &self.unit)] {
            if value.is_empty() || value.len() > 64 {
                return Err(bad(field, "1-64 characters"));
            }
        }
        if !(-180.0..=180.0).contains(&self.lon) {
            return Err(bad("lon", format!("{} is outside -180..180", self.lon)));
        }
        if !(-90.0..=90.0).contains(&self.lat) {
            return Err(bad("lat", format!("{} is outside -90..90", self.lat)));
        }
        finite("height", self.height)?;
        finite("warn", self.warn)?;
        finite("alarm", self.alarm)?;
        finite("hysteresis", self.hysteresis)?;
        if self.hysteresis.is_some_and(|h| h < 0.0) {
            return Err(bad("hysteresis", "must not be negative"));
        }
        if self.period_s.is_some_and(|p| !(p.is_finite() && p > 0.0)) {
            return Err(bad("period_s", "must be a positive number of seconds"));
        }
        Ok(())
    }

    fn high_is_bad(&self) -> bool {
        match (self.warn, self.alarm) {
            (Some(w), Some(a)) => a >= w,
            _ => true,
        }
    }

    /// How far `value` is past `threshold` in the bad direction (positive = past).
    fn past(&self, value: f64, threshold: f64) -> f64 {
        if self.high_is_bad() { value - threshold } else { threshold - value }
    }

    /// The state after a reading, given the state before it. Entering a worse state
    /// takes crossing its threshold; leaving it takes coming back by the hysteresis.
    pub fn next_state(&self, before: SensorState, value: f64) -> SensorState {
        let h = self.hysteresis.unwrap_or(0.0);
        let level = |threshold: Option<f64>, held: bool| {
            threshold.is_some_and(|t| {
                let past = self.past(value, t);
                if held { past > -h } else { past >= 0.0 }
            })
        };
        if level(self.alarm, before == SensorState::Alarm) {
            SensorState::Alarm
        } else if level(self.warn, matches!(before, SensorState::Warn | SensorState::Alarm)) {
            SensorState::Warn
        } else {
            SensorState::Ok
        }
    }

    /// Milliseconds of silence after which the sensor is stale.
    pub fn stale_after_ms(&self) -> i64 {
        (self.period_s.unwrap_or(DEFAULT_PERIOD_S) * STALE_PERIODS * 1000.0) as i64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SensorState {
    /// Registered, nothing heard yet.
    #[default]
    Unknown,
    Ok,
    Warn,
    Alarm,
    Stale,
}

/// One value at one time, as `POST /api/readings` takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub sensor: String,
    /// RFC 3339.
    pub t: String,
    pub value: f64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// RFC 3339 date-time to milliseconds since the Unix epoch.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, SensorError> {
    let err = || SensorError::Time(s.chars().take(64).collect());
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<i64, SensorError> {
        let part = s.get(r).ok_or_else(err)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err());
        }
        part.parse::<i64>().map_err(|_| err())
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let month_days = [
        31,
        if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&mo) || d < 1 || d > month_days[(mo - 1) as usize] || h > 23 || mi > 59 || sec > 60
    {
        return Err(err());
    }
    let mut i = 19;
    let mut ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err(err());
        }
        let frac = &s[start..i.min(start + 3)];
        ms = frac.parse::<i64>().map_err(|_| err())? * 10i64.pow(3 - frac.len() as u32);
    }
    let offset_min = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return Err(err());
            }
            let m = oh * 60 + om;
            if *sign == b'+' { m } else { -m }
        }
        _ => return Err(err()),
    };
    let seconds = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_min * 60;
    Ok(seconds * 1000 + ms)
}

/// Milliseconds since the epoch to RFC 3339 in UTC, with milliseconds.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sensor(warn: Option<f64>, alarm: Option<f64>, hysteresis: Option<f64>) -> Sensor {
        Sensor {
            id: "t-1".into(),
            kind: "temperature".into(),
            unit: "°C".into(),
            lon: 24.94,
            lat: 60.17,
            height: None,
            feature: None,
            warn,
            alarm,
            hysteresis,
            period_s: None,
            owner: None,
            classification: None,
        }
    }

    #[test]
    fn thresholds_with_hysteresis_in_both_directions() {
        let s = sensor(Some(80.0), Some(90.0), Some(2.0));
        let run = |values: &[f64]| {
            let mut state = SensorState::Unknown;
            values
                .iter()
                .map(|v| {
                    state = s.next_state(state, *v);
                    state
                })
                .collect::<Vec<_>>()
        };
        use SensorState::*;
        assert_eq!(
            run(&[70.0, 80.0, 85.0, 90.0, 89.0, 88.5, 87.9, 79.0, 78.1, 77.9]),
            [Ok, Warn, Warn, Alarm, Alarm, Alarm, Warn, Warn, Warn, Ok]
        );
        // Low values are bad when warn > alarm (e.g. pressure).
        let low = sensor(Some(2.0), Some(1.0), None);
        assert_eq!(low.next_state(Ok, 3.0), Ok);
        assert_eq!(low.next_state(Ok, 1.5), Warn);
        assert_eq!(low.next_state(Warn, 0.5), Alarm);
        // Only an alarm threshold; no thresholds at all.
        assert_eq!(sensor(None, Some(5.0), None).next_state(Ok, 4.0), Ok);
        assert_eq!(sensor(None, Some(5.0), None).next_state(Ok, 6.0), Alarm);
        assert_eq!(sensor(None, None, None).next_state(Alarm, 1e9), Ok);
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(sensor(None, None, None).validate(), Result::Ok(()));
        let mut s = sensor(None, None, None);
        s.id = "a b".into();
        assert!(matches!(s.validate(), Err(SensorError::Field { field: "id", .. })));
        let mut s = sensor(None, None, None);
        s.lat = 91.0;
        assert_eq!(s.validate().map_err(|e| e.to_string()), Err("field 'lat': 91 is outside -90..90".into()));
        let mut s = sensor(Some(f64::NAN), None, None);
        assert!(matches!(s.validate(), Err(SensorError::Field { field: "warn", .. })));
        s.warn = None;
        s.period_s = Some(0.0);
        assert!(matches!(s.validate(), Err(SensorError::Field { field: "period_s", .. })));
    }

    #[test]
    fn rfc3339_round_trips_and_rejects_garbage() {
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00Z"), Result::Ok(0));
        assert_eq!(parse_rfc3339_ms("2000-03-01T00:00:00.5Z"), Result::Ok(951_868_800_500));
        assert_eq!(parse_rfc3339_ms("2013-12-02T21:15:00+08:00"), parse_rfc3339_ms("2013-12-02T13:15:00Z"));
        assert_eq!(parse_rfc3339_ms("2024-02-29T23:59:59.999-00:30"), Result::Ok(1_709_252_999_999));
        for ms in [0, 951_868_800_500, 1_709_252_999_999, -86_400_001, 4_102_444_800_000] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Result::Ok(ms), "{}", format_rfc3339_ms(ms));
        }
        for bad in [
            "",
            "2013-12-02",
            "2013-12-02 21:15:00",
            "2023-02-29T00:00:00Z",
            "2013-13-02T00:00:00Z",
            "2013-12-02T24:00:00Z",
            "2013-12-02T21:15:00.Z",
            "2013-12-02T21:15:00+0800",
            "２０１３-12-02T21:15:00Z",
        ] {
            assert!(parse_rfc3339_ms(bad).is_err(), "{bad}");
        }
    }
}
