//! `cim-server --store DIR --bind 127.0.0.1:PORT`

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use cim_tileserver::{AppState, app};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(name = "cim-server", version, about = "Serve a CIM store over HTTP")]
struct Cli {
    /// Store directory written by cim-ingest.
    #[arg(long)]
    store: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    /// Run the embedded MQTT broker here (e.g. 127.0.0.1:1883; port 0 picks one):
    /// publishers send cim/sensors/{id}, acknowledged once stored.
    #[arg(long, value_name = "ADDR")]
    mqtt_listen: Option<SocketAddr>,
    /// Take sensor readings from this MQTT broker (e.g. mosquitto), topic cim/sensors/{id}.
    #[arg(long, value_name = "HOST:PORT")]
    mqtt_broker: Option<String>,
    /// MQTT client id; keep it stable so the broker keeps our session across restarts.
    #[arg(long, default_value = "cim-server")]
    mqtt_client_id: String,
    /// Days of raw readings kept before each sensor's newest (minute and hour means stay).
    #[arg(long, default_value_t = 30.0)]
    keep_raw_days: f64,
    /// Days of per-minute means kept (hour means are kept for good).
    #[arg(long, default_value_t = 365.0)]
    keep_minute_days: f64,
    /// Serve the browser viewer built by scripts/build-web.sh from this directory:
    /// browsers opening / get the 3D city view.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
    /// API tokens (JSON: name, sha256 of the token, role, clearance, expires): with
    /// them writes need the ingest or admin role; callers without a token always see
    /// public layers only.
    #[arg(long, value_name = "FILE")]
    tokens: Option<PathBuf>,
    /// The `cim-ingest` that runs uploaded survey drops (default: beside cim-server).
    #[arg(long, value_name = "PATH")]
    ingest_bin: Option<PathBuf>,
    /// Stop and fail an ingest job that runs longer than this many seconds.
    #[arg(long, value_name = "SECONDS")]
    job_time_limit_s: Option<u64>,
    /// Largest upload an ingest job accepts, in megabytes.
    #[arg(long, default_value_t = 1024)]
    max_upload_mb: usize,
    /// This server's own audit chain (STORE/.audit/NAME/) when several servers share
    /// a store; one chain takes one writer.
    #[arg(long, value_name = "NAME")]
    audit_instance: Option<String>,
    /// Start a new audit log file past this many megabytes.
    #[arg(long, default_value_t = 256)]
    audit_max_mb: u64,
    /// Remove closed audit log files older than this many days (the chain is kept
    /// verifiable from an anchor).
    #[arg(long, default_value_t = cim_tileserver::audit::DEFAULT_KEEP_DAYS)]
    audit_keep_days: f64,
    /// Keep every closed audit log file (no retention).
    #[arg(long, conflicts_with = "audit_keep_days")]
    audit_keep_forever: bool,
    /// Fold tile, 3D Tiles and terrain reads into one audit record per caller,
    /// layer, kind and status per this many seconds; 0 records each.
    #[arg(long, default_value_t = cim_tileserver::audit::DEFAULT_AGGREGATE_S)]
    audit_aggregate_s: u64,
    /// A secret (32 bytes or more, in a file outside the store) that keys a MAC on
    /// every audit record: an edit of the log, even with every hash recomputed,
    /// then shows.
    #[arg(long, value_name = "FILE")]
    audit_key: Option<PathBuf>,
    /// An Ed25519 seed (32 bytes, raw or hex, in a file outside the store) that
    /// signs the chain's head each minute and at shutdown (GET /api/audit/checkpoints),
    /// so a cut, emptied or removed log shows.
    #[arg(long, value_name = "FILE")]
    audit_signing_key: Option<PathBuf>,
    /// Seconds between signed checkpoints of the audit chain's head.
    #[arg(long, default_value_t = 60)]
    audit_checkpoint_s: u64,
    /// Who may see the live sensors: public, internal or restricted.
    #[arg(long, default_value = "public")]
    sensors_classification: cim_core::catalogue::Classification,
    /// Requests per second each token may make (429 beyond it).
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<f64>,
    /// Requests per second each client address may make without a token (429
    /// beyond it).
    #[arg(long, value_name = "PER_SECOND")]
    anonymous_rate_limit: Option<f64>,
    /// Connections served at once; past it new clients get 503 at once.
    #[arg(long, default_value_t = 4096)]
    max_connections: usize,
    /// Seconds a client has to send a request's headers.
    #[arg(long, default_value_t = 10.0)]
    header_timeout_s: f64,
    /// Seconds without a byte either way after which a connection is closed.
    #[arg(long, default_value_t = 300.0)]
    idle_timeout_s: f64,
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run() {
        eprintln!("cim-server: {e:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.store.is_dir(), "store {} is not a directory", cli.store.display());
    let listener =
        tokio::net::TcpListener::bind(cli.bind).await.with_context(|| format!("binding {}", cli.bind))?;
    let addr = listener.local_addr()?;
    let mqtt = match cli.mqtt_listen {
        Some(at) => {
            Some(tokio::net::TcpListener::bind(at).await.with_context(|| format!("binding MQTT {at}"))?)
        }
        None => None,
    };
    // Scripts read these lines for the ports; a closed stdout must not stop the server.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "cim-server listening on http://{addr}");
    if let Some(m) = &mqtt {
        let _ = writeln!(stdout, "cim-server MQTT broker on mqtt://{}", m.local_addr()?);
    }
    let _ = stdout.flush();
    let mut state = AppState::open(&cli.store).context("opening the live sensor database")?;
    match &cli.tokens {
        Some(path) => state.tokens = Some(std::sync::Arc::new(cim_tileserver::access::Tokens::load(path)?)),
        None => tracing::warn!(
            "no --tokens: writes (sensors, readings) are open to anyone; callers see public layers only"
        ),
    }
    state.sensors_classification = cli.sensors_classification;
    anyhow::ensure!(cli.max_upload_mb >= 1, "--max-upload-mb must be at least 1");
    state.max_upload_bytes = cli.max_upload_mb.saturating_mul(1 << 20);
    let ingest_bin = match &cli.ingest_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe().context("locating cim-server")?.with_file_name("cim-ingest"),
    };
    if let Some(s) = cli.job_time_limit_s {
        anyhow::ensure!(s >= 1, "--job-time-limit-s must be at least 1");
    }
    state.jobs = Some(cim_tileserver::jobs::Jobs::start_with_limit(
        cli.store.clone(),
        ingest_bin,
        state.max_upload_bytes as u64,
        cli.job_time_limit_s.map(std::time::Duration::from_secs),
    ));
    let days = cli.audit_keep_days;
    anyhow::ensure!(days.is_finite() && days >= 0.0, "--audit-keep-days {days} must be zero or more");
    anyhow::ensure!(cli.audit_max_mb >= 1, "--audit-max-mb must be at least 1");
    let policy = cim_tileserver::audit::AuditPolicy {
        max_file_bytes: cli.audit_max_mb << 20,
        keep_days: (!cli.audit_keep_forever).then_some(days),
        aggregate: (cli.audit_aggregate_s > 0).then(|| std::time::Duration::from_secs(cli.audit_aggregate_s)),
        key: match &cli.audit_key {
            Some(file) => {
                let key = key_file(&cli.store, file, "--audit-key")?;
                anyhow::ensure!(
                    key.len() >= 32,
                    "--audit-key {}: use a secret of 32 bytes or more",
                    file.display()
                );
                Some(std::sync::Arc::from(key))
            }
            None => None,
        },
        signer: match &cli.audit_signing_key {
            Some(file) => {
                let bytes = key_file(&cli.store, file, "--audit-signing-key")?;
                let text = String::from_utf8_lossy(&bytes).trim().to_owned();
                let seed: [u8; 32] = match (bytes.len(), hex::decode(&text)) {
                    (_, Ok(h)) if h.len() == 32 => h.try_into().map_err(|_| anyhow::anyhow!("32 bytes"))?,
                    (32, _) => bytes.as_slice().try_into()?,
                    _ => {
                        anyhow::bail!("--audit-signing-key {}: 32 raw bytes or 64 hex digits", file.display())
                    }
                };
                Some(std::sync::Arc::new(ed25519_dalek::SigningKey::from_bytes(&seed)))
            }
            None => None,
        },
    };
    // The default log opened with the state is replaced by the configured one.
    state.audit = None;
    let audit = std::sync::Arc::new(claim_audit_log(&cli.store, cli.audit_instance.as_deref(), policy)?);
    anyhow::ensure!(cli.audit_checkpoint_s >= 1, "--audit-checkpoint-s must be at least 1");
    cim_tileserver::audit::spawn_keeper(
        audit.clone(),
        std::time::Duration::from_secs(cli.audit_checkpoint_s),
    );
    state.audit = Some(audit.clone());
    if let Some(rps) = cli.rate_limit {
        anyhow::ensure!(
            rps.is_finite() && rps >= 1.0,
            "--rate-limit {rps} must be at least 1 request per second"
        );
        state.rate_limit = Some(std::sync::Arc::new(cim_tileserver::access::RateLimiter::new(rps)));
    }
    if let Some(rps) = cli.anonymous_rate_limit {
        anyhow::ensure!(
            rps.is_finite() && rps >= 1.0,
            "--anonymous-rate-limit {rps} must be at least 1 request per second"
        );
        state.anonymous_rate_limit = Some(std::sync::Arc::new(cim_tileserver::access::RateLimiter::new(rps)));
    }
    if let Some(dir) = &cli.web {
        state.web = Some(std::sync::Arc::new(cim_tileserver::web::WebBundle::load(dir)?));
    }
    if let Some(live) = &state.live {
        cim_tileserver::live::spawn_stale_checker(live.clone());
        cim_tileserver::live::spawn_pruner(live.clone(), cli.keep_raw_days, cli.keep_minute_days);
    }
    if let Some(mqtt) = mqtt {
        let live =
            state.live.clone().context("--mqtt-listen needs the live database, held by another instance")?;
        let access = cim_tileserver::live::broker::BrokerAccess {
            tokens: state.tokens.clone(),
            audit: state.audit.clone(),
            sensors_classification: state.sensors_classification,
        };
        cim_tileserver::live::broker::spawn(live, mqtt, access);
    }
    if let Some(broker) = &cli.mqtt_broker {
        let live =
            state.live.clone().context("--mqtt-broker needs the live database, held by another instance")?;
        let (host, port) = broker
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            .with_context(|| format!("--mqtt-broker '{broker}': HOST:PORT expected"))?;
        cim_tileserver::live::mqtt::spawn_bridge(live, host, port, cli.mqtt_client_id.clone());
    }
    let seconds = |what: &str, s: f64| {
        anyhow::ensure!(s.is_finite() && (0.1..=86_400.0).contains(&s), "--{what} {s}: 0.1 to 86400 seconds");
        Ok(std::time::Duration::from_secs_f64(s))
    };
    anyhow::ensure!(cli.max_connections >= 1, "--max-connections must be at least 1");
    let limits = cim_tileserver::serve::Limits {
        max_connections: cli.max_connections,
        header_timeout: seconds("header-timeout-s", cli.header_timeout_s)?,
        idle_timeout: seconds("idle-timeout-s", cli.idle_timeout_s)?,
    };
    cim_tileserver::serve::serve(listener, app(state), limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    // What was folded or not yet signed is kept before the process goes.
    audit.flush_folded();
    audit.checkpoint().context("writing the last audit checkpoint")?;
    Ok(())
}

/// A key's bytes, from a file that must not lie in the store: whoever can write
/// the store must not be able to read what makes tampering show.
fn key_file(store: &std::path::Path, file: &std::path::Path, flag: &str) -> anyhow::Result<Vec<u8>> {
    let at = std::fs::canonicalize(file).with_context(|| format!("{flag} {}", file.display()))?;
    let store = std::fs::canonicalize(store).with_context(|| format!("--store {}", store.display()))?;
    anyhow::ensure!(!at.starts_with(&store), "{flag} {}: keep the key outside the store", file.display());
    std::fs::read(&at).with_context(|| format!("{flag} {}", file.display()))
}

/// The audit chain this server writes alone. A named instance must be free; without
/// a name the default chain is taken, or when another server on the store holds it,
/// the first free `server-N` chain (so servers sharing a store never interleave one
/// chain, and a restarted one continues its own).
fn claim_audit_log(
    store: &std::path::Path,
    instance: Option<&str>,
    policy: cim_tileserver::audit::AuditPolicy,
) -> anyhow::Result<cim_tileserver::audit::AuditLog> {
    use cim_tileserver::audit::AuditLog;
    let open = |name: Option<&str>| {
        AuditLog::open_instance(store, name, policy.clone()).context("opening the audit log")
    };
    if instance.is_some() {
        let log = open(instance)?;
        log.claim().map_err(anyhow::Error::msg)?;
        return Ok(log);
    }
    let log = open(None)?;
    let Err(held) = log.claim() else { return Ok(log) };
    for n in 2..=64 {
        let name = format!("server-{n}");
        let log = open(Some(&name))?;
        if log.claim().is_ok() {
            tracing::warn!("{held}; this server writes its own chain in .audit/{name}/");
            return Ok(log);
        }
    }
    anyhow::bail!("{held}, and so are server-2 to server-64")
}
