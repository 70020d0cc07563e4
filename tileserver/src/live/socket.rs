//! `GET /api/live?bbox=w,s,e,n&kind=a,b`: a WebSocket that first sends a snapshot of
//! the matching sensors with their states, then each new reading and alert. A client
//! that falls `LIVE_BUFFER` events behind is closed (code 1008, "too slow") rather
//! than slowing the server or growing its memory. `GET /api/live/sse` sends the same
//! as server-sent events (`snapshot`, `reading`, `alert`) for clients without
//! WebSocket; a slow one is disconnected the same way.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use std::sync::Arc;

use futures_util::SinkExt;

use super::{Published, sensor_json};
use crate::{ApiError, AppState};

#[derive(Deserialize)]
pub struct Filter {
    bbox: Option<String>,
    kind: Option<String>,
}

/// Which sensors a subscriber wants.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interest {
    pub bbox: Option<[f64; 4]>,
    pub kinds: Option<Vec<String>>,
    /// The subscriber's clearance: sensors classified above it are not sent.
    pub clearance: cim_core::catalogue::Classification,
}

impl Interest {
    pub fn parse(bbox: Option<&str>, kind: Option<&str>) -> Result<Self, String> {
        let bbox = match bbox {
            None => None,
            Some(s) => {
                let v: Vec<f64> =
                    s.split(',').map(|p| p.trim().parse::<f64>()).collect::<Result<_, _>>().map_err(
                        |_| {
                            format!(
                                "bbox '{}': four numbers west,south,east,north",
                                s.chars().take(64).collect::<String>()
                            )
                        },
                    )?;
                let b: [f64; 4] =
                    v.try_into().map_err(|_| "bbox: four numbers west,south,east,north".to_owned())?;
                if !(b[0] <= b[2] && b[1] <= b[3]) || b.iter().any(|x| !x.is_finite()) {
                    return Err("bbox: west <= east and south <= north".into());
                }
                Some(b)
            }
        };
        let kinds = kind.map(|k| k.split(',').map(str::to_owned).filter(|k| !k.is_empty()).collect());
        // Taken here, in the request: the stream outlives the request's caller scope.
        Ok(Self { bbox, kinds, clearance: crate::access::current().clearance })
    }

    pub fn wants(&self, sensor: &cim_core::sensors::Sensor) -> bool {
        sensor.clearance_needed() <= self.clearance && self.wants_at(sensor.lon, sensor.lat, &sensor.kind)
    }

    pub fn wants_at(&self, lon: f64, lat: f64, kind: &str) -> bool {
        self.bbox.is_none_or(|[w, s, e, n]| (w..=e).contains(&lon) && (s..=n).contains(&lat))
            && self.kinds.as_ref().is_none_or(|k| k.iter().any(|x| x == kind))
    }
}

pub async fn upgrade(
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let interest =
        Interest::parse(filter.bbox.as_deref(), filter.kind.as_deref()).map_err(ApiError::BadRequest)?;
    let live = super::live_of(&state)?.clone();
    Ok(ws.on_upgrade(move |socket| serve(socket, live, interest)))
}

fn snapshot(live: &super::Live, interest: &Interest) -> String {
    let current = live.current();
    let sensors: Vec<serde_json::Value> = live
        .sensors_for(interest.clearance)
        .iter()
        .filter(|s| interest.wants(s))
        .map(|s| sensor_json(s, current.get(&s.id)))
        .collect();
    json!({"type": "snapshot", "sensors": sensors}).to_string()
}

fn wanted(interest: &Interest, event: &Published) -> bool {
    event.classification <= interest.clearance && interest.wants_at(event.lon, event.lat, &event.kind)
}

type SseState =
    (Option<String>, tokio::sync::broadcast::Receiver<Arc<Published>>, Arc<super::Live>, Interest);

pub async fn sse(
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
) -> Result<
    axum::response::sse::Sse<
        impl futures_util::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
    >,
    ApiError,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    let interest =
        Interest::parse(filter.bbox.as_deref(), filter.kind.as_deref()).map_err(ApiError::BadRequest)?;
    let live = super::live_of(&state)?.clone();
    let events = live.events.subscribe();
    let first = snapshot(&live, &interest);
    let start: SseState = (Some(first), events, live, interest);
    let stream = futures_util::stream::unfold(start, |(first, mut events, live, interest)| async move {
        if let Some(s) = first {
            return Some((Ok(Event::default().event("snapshot").data(s)), (None, events, live, interest)));
        }
        loop {
            match events.recv().await {
                Ok(event) => {
                    if wanted(&interest, &event) {
                        return Some((
                            Ok(Event::default().event(event.name).data(event.json.as_str())),
                            (None, events, live, interest),
                        ));
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "live SSE subscriber too slow; closing");
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Events sent before one flush; more only while they are already waiting.
const SEND_BURST: usize = 256;

async fn serve(mut socket: WebSocket, live: Arc<super::Live>, interest: Interest) {
    // Subscribe before the snapshot, so nothing falls between the two.
    let mut events = live.events.subscribe();
    let snapshot = snapshot(&live, &interest);
    if socket.send(Message::Text(snapshot.into())).await.is_err() {
        return;
    }
    // A ping through quiet spells: the connection is not idle to the server's
    // idle limit, nor to proxies between, and a vanished client is noticed.
    let mut ping = tokio::time::interval(std::time::Duration::from_secs(30));
    ping.tick().await;
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return;
                }
            }
            event = events.recv() => {
                let event = match event {
                    Ok(e) => e,
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "live subscriber too slow; closing");
                        let frame = CloseFrame { code: 1008, reason: "too slow".into() };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                };
                if wanted(&interest, &event) && socket.feed(Message::Text(event.json.clone())).await.is_err() {
                    return;
                }
                // Whatever else is already waiting goes out in the same flush.
                for _ in 0..SEND_BURST {
                    match events.try_recv() {
                        Ok(event) => {
                            if wanted(&interest, &event)
                                && socket.feed(Message::Text(event.json.clone())).await.is_err()
                            {
                                return;
                            }
                        }
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(missed)) => {
                            tracing::warn!(missed, "live subscriber too slow; closing");
                            let frame = CloseFrame { code: 1008, reason: "too slow".into() };
                            let _ = socket.send(Message::Close(Some(frame))).await;
                            return;
                        }
                        Err(_) => break,
                    }
                }
                if socket.flush().await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
