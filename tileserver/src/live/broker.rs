//! The embedded MQTT 3.1.1 broker: `cim-server --mqtt-listen ADDR` takes sensor
//! publishers directly, so the main job needs no extra service.
//!
//! Why not only bridge from an external broker: here a QoS 1 PUBACK (or a QoS 2
//! PUBREC) leaves only after the reading committed, so an acknowledged reading is
//! durable end to end, with nothing between the sensor and the store that could
//! lose it. Publishes from every connection share one group commit.
//!
//! Access follows the HTTP server's tokens (`cim-server --tokens`): a client gives
//! its token as the CONNECT password (any user name). An unknown or expired token is
//! refused at CONNECT; publishing needs the ingest or admin role and clearance for
//! the sensors' classification (others are
//! disconnected at their first publish); subscribing needs clearance for the
//! sensors' classification (refused filters get a SUBACK failure). Every CONNECT,
//! SUBSCRIBE filter and stored or refused PUBLISH goes to the audit log. Without a
//! token file the broker is open, like the HTTP writes in development mode.
//!
//! It is a small broker, not a full one: clients may also SUBSCRIBE (filters with
//! `+`/`#`) and get every publish that matches at QoS 0, so a `mosquitto_sub` can
//! watch the traffic. Retained messages, wills and persistent outgoing sessions are
//! not kept; scale-out deployments put mosquitto in front and use `--mqtt-broker`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::{matches, valid_filter};
use rumqttc::{
    ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, QoS, SubAck, SubscribeReasonCode, UnsubAck,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc};

use super::Live;
use super::mqtt::{GROUP_COMMIT, TOPIC_PREFIX, store_messages};

/// Packets larger than this end the connection (MQTT 3.1.1 cannot refuse one message).
pub const MAX_PACKET: usize = 1 << 20;
/// Publishes waiting for the group commit, across connections; a full queue stops
/// reading from publishers' sockets (TCP back-pressure) instead of growing.
const COMMIT_QUEUE: usize = 100_000;
/// Messages a watching subscriber may lag before it misses some (QoS 0).
const FANOUT_BUFFER: usize = 16_384;

/// What the broker has seen, for `/api/live/stats`.
#[derive(Debug, Default)]
pub struct BrokerCounters {
    pub connections: AtomicU64,
    pub publishes: AtomicU64,
    pub protocol_errors: AtomicU64,
}

/// A reply owed to one connection once its message is stored.
struct Owed {
    to: mpsc::UnboundedSender<Packet>,
    pkid: u16,
    qos: QoS,
}

struct Queued {
    /// Who published it (the audit log's `who`) and their clearance.
    who: Arc<str>,
    clearance: cim_core::catalogue::Classification,
    topic: String,
    payload: Bytes,
    owed: Option<Owed>,
}

/// Who may connect, publish and subscribe, and where that is recorded.
#[derive(Clone, Default)]
pub struct BrokerAccess {
    pub tokens: crate::access::SharedTokens,
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    pub sensors_classification: cim_core::catalogue::Classification,
}

impl BrokerAccess {
    fn record(&self, who: &str, method: &str, target: &str, status: u16) {
        if let Some(log) = &self.audit {
            log.append(who, method, target, status);
        }
    }

    /// A group commit's records, written together.
    fn record_all<'a>(&self, entries: impl IntoIterator<Item = crate::audit::Entry<'a>>) {
        if let Some(log) = &self.audit {
            log.append_all(entries);
        }
    }
}

#[derive(Clone)]
struct Shared {
    access: BrokerAccess,
    live: Arc<Live>,
    commit: mpsc::Sender<Queued>,
    fanout: broadcast::Sender<(String, Bytes)>,
}

/// Accepts MQTT clients on `listener` for ever.
pub fn spawn(live: Arc<Live>, listener: TcpListener, access: BrokerAccess) {
    let (commit, queue) = mpsc::channel(COMMIT_QUEUE);
    let (fanout, _) = broadcast::channel(FANOUT_BUFFER);
    let shared = Shared { access: access.clone(), live: live.clone(), commit, fanout };
    tokio::spawn(group_commit(live, queue, access));
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        shared.live.broker.connections.fetch_add(1, Ordering::Relaxed);
                        if let Err(why) = serve(stream, shared.clone()).await {
                            shared.live.broker.protocol_errors.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%peer, "MQTT connection closed: {why}");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!("MQTT accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}

/// Stores queued publishes many per transaction, then sends what each one is owed,
/// in arrival order (MQTT 3.1.1 §4.6: acknowledgements keep the publish order).
async fn group_commit(live: Arc<Live>, mut queue: mpsc::Receiver<Queued>, access: BrokerAccess) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, GROUP_COMMIT).await > 0 {
        let mut taken = std::mem::take(&mut batch);
        // A sensor classified above its publisher is refused like an unknown one
        // (acknowledged, not stored: MQTT 3.1.1 cannot refuse one message).
        for q in &mut taken {
            let sensor = q.topic.strip_prefix(TOPIC_PREFIX).unwrap_or_default();
            if live.clearance_of(sensor).is_some_and(|needed| needed > q.clearance) {
                live.counters.received.fetch_add(1, Ordering::Relaxed);
                live.counters.rejected_unknown_sensor.fetch_add(1, Ordering::Relaxed);
                access.record(&q.who, "MQTT PUBLISH", &q.topic, 404);
                q.topic.clear();
            }
        }
        let messages =
            taken.iter().filter(|q| !q.topic.is_empty()).map(|q| (q.topic.as_str(), &q.payload[..]));
        // Not stored, so not acknowledged: the clients resend after reconnecting.
        let status = if store_messages(&live, messages).await { 200 } else { 503 };
        access.record_all(taken.iter().filter(|q| !q.topic.is_empty()).map(|q| crate::audit::Entry {
            who: &q.who,
            method: "MQTT PUBLISH",
            target: &q.topic,
            status,
        }));
        if status != 200 {
            continue;
        }
        for owed in taken.into_iter().filter_map(|q| q.owed) {
            let reply = match owed.qos {
                QoS::ExactlyOnce => Packet::PubRec(PubRec::new(owed.pkid)),
                _ => Packet::PubAck(PubAck::new(owed.pkid)),
            };
            // A closed connection lost its acknowledgements: the client resends.
            let _ = owed.to.send(reply);
        }
    }
}

/// The first bytes of a packet: enough for a CONNECT's flags.
type Head = [u8; 16];

/// Reads the next packet, waiting for more bytes as needed; `None` at a clean end.
/// `head` gets the packet's first bytes, for what the decoder does not check.
async fn next_packet(
    stream: &mut tokio::net::tcp::OwnedReadHalf,
    buffer: &mut BytesMut,
    head: &mut Head,
) -> Result<Option<Packet>, String> {
    loop {
        let n = buffer.len().min(head.len());
        let mut first = [0u8; 16];
        first[..n].copy_from_slice(&buffer[..n]);
        match Packet::read(buffer, MAX_PACKET) {
            Ok(packet) => {
                *head = first;
                return Ok(Some(packet));
            }
            Err(rumqttc::mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(e) => return Err(format!("malformed MQTT packet: {e}")),
        }
        buffer.reserve(4096);
        let read = stream.read_buf(buffer).await.map_err(|e| format!("read: {e}"))?;
        if read == 0 {
            return if buffer.is_empty() { Ok(None) } else { Err("connection closed mid-packet".into()) };
        }
    }
}

/// What is wrong with a CONNECT's fixed header or connect flags, from its first bytes.
fn connect_flaws(head: &Head) -> Option<&'static str> {
    if head[0] & 0x0f != 0 {
        return Some("the fixed header's flags are not 0");
    }
    // Remaining length: 1 to 4 bytes, each with a continuation bit.
    let mut at = 1;
    while at < 5 && head[at] & 0x80 != 0 {
        at += 1;
    }
    let name_len = usize::from(u16::from_be_bytes([head[at + 1], head[at + 2]]));
    let flags_at = at + 1 + 2 + name_len + 1;
    let flags = *head.get(flags_at)?;
    if flags & 0x01 != 0 {
        return Some("the reserved connect flag is set");
    }
    // Without a will, its QoS and retain flags must be 0 (§3.1.2.6-7); QoS 3 never.
    let will = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0x03;
    if will_qos == 3 || (!will && (will_qos != 0 || flags & 0x20 != 0)) {
        return Some("the will flags are inconsistent");
    }
    // A password needs a user name (§3.1.2.9).
    if flags & 0x40 != 0 && flags & 0x80 == 0 {
        return Some("a password without a user name");
    }
    None
}

async fn serve(stream: TcpStream, shared: Shared) -> Result<(), String> {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut buffer = BytesMut::with_capacity(8192);
    let mut head: Head = [0; 16];
    let connect =
        match tokio::time::timeout(Duration::from_secs(10), next_packet(&mut reader, &mut buffer, &mut head))
            .await
        {
            Ok(Ok(Some(Packet::Connect(c)))) => {
                // MQTT 3.1.1 §3.1.2.3: the server MUST disconnect a client whose CONNECT
                // sets the reserved flag (§3.1 also fixes the header's flags at 0).
                if let Some(why) = connect_flaws(&head) {
                    return Err(format!("malformed CONNECT: {why}"));
                }
                c
            }
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(other))) => return Err(format!("{other:?} before CONNECT")),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err("no CONNECT within 10 s".into()),
        };
    // Keep-alive 0 means none; otherwise 1.5 periods of silence end the connection.
    let idle = match connect.keep_alive {
        0 => Duration::from_secs(24 * 3600),
        k => Duration::from_millis(u64::from(k) * 1500),
    };
    let client = connect.client_id.chars().take(64).collect::<String>();
    let target = format!("mqtt client '{client}'");
    let principal = match (&shared.access.tokens, &connect.login) {
        (_, None) => Ok(crate::access::Principal::public()),
        (Some(tokens), Some(login)) => tokens.resolve(&login.password).map_err(|e| e.to_string()),
        (None, Some(_)) => Err("this server has no tokens configured".to_owned()),
    };
    let principal = match principal {
        Ok(p) => p,
        Err(why) => {
            shared.access.record("invalid token", "MQTT CONNECT", &target, 401);
            let mut bytes = BytesMut::new();
            let refusal = Packet::ConnAck(ConnAck::new(ConnectReturnCode::BadUserNamePassword, false));
            if refusal.write(&mut bytes, MAX_PACKET).is_ok() {
                let _ = writer.write_all(&bytes).await;
            }
            return Err(format!("client '{client}' refused: {why}"));
        }
    };
    shared.access.record(&principal.name, "MQTT CONNECT", &target, 200);
    let who: Arc<str> = Arc::from(principal.name.as_str());
    let may_watch = principal.may_see(shared.access.sensors_classification);
    // Publishing is a write to the sensors: the ingest role, and clearance for them.
    let may_publish =
        shared.access.tokens.is_none() || (principal.role >= crate::access::Role::Ingest && may_watch);
    tracing::debug!(client, who = %who, "MQTT client connected");

    // One writer task per connection: acknowledgements come from the group commit,
    // watched messages from the fan-out, control replies from the reader below.
    let (out, mut outgoing) = mpsc::unbounded_channel::<Packet>();
    let watched = Arc::new(AtomicUsize::new(0));
    let written = watched.clone();
    let write_task = tokio::spawn(async move {
        let mut bytes = BytesMut::with_capacity(8192);
        while let Some(packet) = outgoing.recv().await {
            bytes.clear();
            let mut next = Some(packet);
            // Coalesce whatever else is ready into the same write.
            while let Some(p) = next.take() {
                if matches!(p, Packet::Publish(_)) {
                    written.fetch_sub(1, Ordering::Relaxed);
                }
                p.write(&mut bytes, MAX_PACKET).map_err(|e| format!("encode: {e}"))?;
                if bytes.len() < 64 * 1024 {
                    next = outgoing.try_recv().ok();
                }
            }
            writer.write_all(&bytes).await.map_err(|e| format!("write: {e}"))?;
        }
        Ok::<(), String>(())
    });
    let _ = out.send(Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)));

    let mut filters: Vec<String> = Vec::new();
    let mut watch: Option<tokio::task::JoinHandle<()>> = None;
    let result = loop {
        let packet = match tokio::time::timeout(idle, next_packet(&mut reader, &mut buffer, &mut head)).await
        {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => break Ok(()),
            Ok(Err(e)) => break Err(e),
            Err(_) => break Err(format!("client '{client}' silent past its keep-alive")),
        };
        match packet {
            // §3.3.2.1 and §1.5.3: a topic name with wildcards or U+0000 is a protocol
            // violation, answered by closing the connection, never acknowledged.
            Packet::Publish(p) if p.topic.contains(['+', '#', '\0']) || p.topic.is_empty() => {
                shared.access.record(&who, "MQTT PUBLISH", &p.topic.replace('\0', "\\0"), 400);
                break Err(format!("client '{client}' published to an invalid topic name {:?}", p.topic));
            }
            Packet::Publish(p) => {
                shared.live.broker.publishes.fetch_add(1, Ordering::Relaxed);
                if !may_publish {
                    shared.access.record(&who, "MQTT PUBLISH", &p.topic, 403);
                    break Err(format!(
                        "client '{client}' ({who}) may not publish: it needs the ingest or admin role and clearance for the sensors"
                    ));
                }
                if shared.fanout.receiver_count() > 0 {
                    let _ = shared.fanout.send((p.topic.clone(), p.payload.clone()));
                }
                // Other topics are only passed on to watchers: nothing to store.
                if !p.topic.starts_with(TOPIC_PREFIX) {
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => {
                            let _ = out.send(Packet::PubAck(PubAck::new(p.pkid)));
                        }
                        QoS::ExactlyOnce => {
                            let _ = out.send(Packet::PubRec(PubRec::new(p.pkid)));
                        }
                    }
                    continue;
                }
                let owed = match p.qos {
                    QoS::AtMostOnce => None,
                    qos => Some(Owed { to: out.clone(), pkid: p.pkid, qos }),
                };
                let queued = Queued {
                    who: who.clone(),
                    clearance: principal.clearance,
                    topic: p.topic,
                    payload: p.payload,
                    owed,
                };
                if shared.commit.send(queued).await.is_err() {
                    break Err("the store is shutting down".into());
                }
            }
            Packet::PubRel(r) => {
                let _ = out.send(Packet::PubComp(PubComp::new(r.pkid)));
            }
            Packet::PingReq => {
                let _ = out.send(Packet::PingResp);
            }
            Packet::Subscribe(s) => {
                let mut codes = Vec::with_capacity(s.filters.len());
                for f in s.filters {
                    if !may_watch {
                        shared.access.record(&who, "MQTT SUBSCRIBE", &f.path, 404);
                        codes.push(SubscribeReasonCode::Failure);
                    } else if valid_filter(&f.path) {
                        shared.access.record(&who, "MQTT SUBSCRIBE", &f.path, 200);
                        filters.push(f.path);
                        codes.push(SubscribeReasonCode::Success(QoS::AtMostOnce));
                    } else {
                        shared.access.record(&who, "MQTT SUBSCRIBE", &f.path, 400);
                        codes.push(SubscribeReasonCode::Failure);
                    }
                }
                let _ = out.send(Packet::SubAck(SubAck::new(s.pkid, codes)));
                if let Some(task) = watch.take() {
                    task.abort();
                }
                watch = Some(spawn_watch(
                    shared.fanout.subscribe(),
                    Watcher {
                        filters: filters.clone(),
                        live: shared.live.clone(),
                        clearance: principal.clearance,
                    },
                    out.clone(),
                    watched.clone(),
                ));
            }
            Packet::Unsubscribe(u) => {
                filters.retain(|f| !u.topics.contains(f));
                let _ = out.send(Packet::UnsubAck(UnsubAck::new(u.pkid)));
                if let Some(task) = watch.take() {
                    task.abort();
                }
                if !filters.is_empty() {
                    watch = Some(spawn_watch(
                        shared.fanout.subscribe(),
                        Watcher {
                            filters: filters.clone(),
                            live: shared.live.clone(),
                            clearance: principal.clearance,
                        },
                        out.clone(),
                        watched.clone(),
                    ));
                }
            }
            Packet::Disconnect => break Ok(()),
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubComp(_) => {}
            other => break Err(format!("unexpected {other:?} from client '{client}'")),
        }
    };
    if let Some(task) = watch {
        task.abort();
    }
    // Owed acknowledgements still hold senders; the writer ends once they are sent.
    drop(out);
    let _ = tokio::time::timeout(Duration::from_secs(5), write_task).await;
    result
}

/// Forwards matching publishes to a watching client at QoS 0; a watcher that lags
/// past the buffer misses messages (QoS 0 allows it) rather than slowing publishers.
/// What one watching client may receive.
struct Watcher {
    filters: Vec<String>,
    live: Arc<Live>,
    clearance: cim_core::catalogue::Classification,
}

impl Watcher {
    /// A matching topic, and for a sensor's topic, a sensor within the clearance.
    fn wants(&self, topic: &str) -> bool {
        self.filters.iter().any(|f| matches(topic, f))
            && topic.strip_prefix(TOPIC_PREFIX).is_none_or(|id| {
                // Unknown sensors' topics pass (nothing classified to hide).
                self.live.clearance_of(id).is_none_or(|needed| needed <= self.clearance)
            })
    }
}

fn spawn_watch(
    mut fanout: broadcast::Receiver<(String, Bytes)>,
    watcher: Watcher,
    out: mpsc::UnboundedSender<Packet>,
    queued: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match fanout.recv().await {
                Ok((topic, payload)) => {
                    if watcher.wants(&topic) {
                        // A client that stopped reading its socket misses messages.
                        if queued.load(Ordering::Relaxed) >= FANOUT_BUFFER {
                            continue;
                        }
                        queued.fetch_add(1, Ordering::Relaxed);
                        let mut p = rumqttc::Publish::new(topic, QoS::AtMostOnce, Vec::new());
                        p.payload = payload;
                        if out.send(Packet::Publish(p)).is_err() {
                            return;
                        }
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "MQTT watcher too slow: messages skipped");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}
