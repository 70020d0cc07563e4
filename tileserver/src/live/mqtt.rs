//! Readings in over MQTT: `cim-server --mqtt-broker HOST:PORT` subscribes to
//! `cim/sensors/+` with QoS 1 on a persistent session. Messages are acknowledged to
//! the broker only after the batch holding them committed, so whatever the server had
//! not stored when it died is redelivered by the broker. Many messages share one
//! transaction (group commit), which is what makes durable ingest fast.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use cim_core::sensors::Reading;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS};
use serde::Deserialize;

use super::Live;

pub const TOPIC_PREFIX: &str = "cim/sensors/";
/// Bigger payloads are refused (counted, logged, acknowledged so they are not redelivered).
pub const MAX_PAYLOAD: usize = 64 * 1024;
/// Messages stored per transaction at most.
pub(crate) const GROUP_COMMIT: usize = 10_000;

#[derive(Deserialize)]
struct Payload {
    t: String,
    value: f64,
}

/// A message on `cim/sensors/{id}` with payload `{"t","value"}` to a reading.
pub fn parse_message(topic: &str, payload: &[u8]) -> Result<Reading, String> {
    let sensor =
        topic.strip_prefix(TOPIC_PREFIX).filter(|id| !id.is_empty() && !id.contains('/')).ok_or_else(
            || format!("topic '{}' is not cim/sensors/{{id}}", topic.chars().take(80).collect::<String>()),
        )?;
    if payload.len() > MAX_PAYLOAD {
        return Err(format!("{} byte payload; at most {MAX_PAYLOAD}", payload.len()));
    }
    let p: Payload = serde_json::from_slice(payload)
        .map_err(|e| format!("payload: {{\"t\",\"value\"}} expected ({e})"))?;
    Ok(Reading { sensor: sensor.to_owned(), t: p.t, value: p.value })
}

/// Connects (and keeps reconnecting) to the broker and feeds readings to `live`.
pub fn spawn_bridge(live: Arc<Live>, host: String, port: u16, client_id: String) {
    let mut options = MqttOptions::new(client_id, host.clone(), port);
    options
        .set_keep_alive(Duration::from_secs(30))
        .set_clean_session(false)
        .set_manual_acks(true)
        // Take oversized messages off the wire to refuse them ourselves; a smaller
        // limit would drop the connection and have the broker redeliver them forever.
        .set_max_packet_size(1 << 24, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 100_000);
    // Unbounded on purpose: the event loop must never wait on the writer, or it stops
    // sending the writer's PUBACKs and both wait for ever. The broker's in-flight
    // window (unacknowledged QoS 1 messages) bounds what can pile up here.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Publish>();
    let subscriber = client.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    tracing::info!("MQTT connected to {host}:{port}");
                    let filter = format!("{TOPIC_PREFIX}+");
                    if let Err(e) = subscriber.subscribe(filter, QoS::AtLeastOnce).await {
                        tracing::error!("MQTT subscribe: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if tx.send(p).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("MQTT {host}:{port}: {e}; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut buffer = Vec::new();
        while rx.recv_many(&mut buffer, GROUP_COMMIT).await > 0 {
            let publishes = std::mem::take(&mut buffer);
            let messages = publishes.iter().map(|p| (p.topic.as_str(), &p.payload[..]));
            // Not stored, so not acknowledged: the broker sends them again.
            if store_messages(&live, messages).await {
                for p in &publishes {
                    if let Err(e) = client.ack(p).await {
                        tracing::error!("MQTT ack: {e}");
                    }
                }
            }
        }
    });
}

/// Stores a batch of `cim/sensors/{id}` messages (bad ones refused and counted);
/// true once they are durable and may be acknowledged. Shared by the bridge and the
/// embedded broker.
pub(crate) async fn store_messages<'a>(
    live: &Arc<Live>,
    messages: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> bool {
    let mut readings = Vec::new();
    for (topic, payload) in messages {
        match parse_message(topic, payload) {
            Ok(r) => readings.push(r),
            Err(reason) => {
                live.counters.received.fetch_add(1, Ordering::Relaxed);
                live.counters.rejected_bad_payload.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic, "MQTT message refused: {reason}");
            }
        }
    }
    let l = live.clone();
    match tokio::task::spawn_blocking(move || l.ingest(readings)).await {
        Ok(Ok(outcome)) => {
            for (index, reason) in outcome.rejected.iter().take(10) {
                tracing::warn!(index, "MQTT reading refused: {reason}");
            }
            true
        }
        Ok(Err(e)) => {
            tracing::error!("storing MQTT readings: {e}");
            false
        }
        Err(e) => {
            tracing::error!("storing MQTT readings: {e}");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_become_readings_or_reasons() {
        let r = parse_message("cim/sensors/m-1", br#"{"t":"2014-02-08T04:15:00Z","value":38.5}"#)
            .expect("reading");
        assert_eq!((r.sensor.as_str(), r.t.as_str(), r.value), ("m-1", "2014-02-08T04:15:00Z", 38.5));
        assert!(parse_message("cim/sensors/", b"{}").is_err());
        assert!(parse_message("cim/sensors/a/b", br#"{"t":"x","value":1}"#).is_err());
        assert!(parse_message("other/m-1", br#"{"t":"x","value":1}"#).is_err());
        assert!(parse_message("cim/sensors/m-1", b"not json").is_err_and(|e| e.contains("payload")));
        let huge = vec![b' '; MAX_PAYLOAD + 1];
        assert!(parse_message("cim/sensors/m-1", &huge).is_err_and(|e| e.contains("at most")));
    }
}
