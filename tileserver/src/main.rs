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
    /// verifiable from an anchor); without it nothing is removed.
    #[arg(long)]
    audit_keep_days: Option<f64>,
    /// Who may see the live sensors: public, internal or restricted.
    #[arg(long, default_value = "public")]
    sensors_classification: cim_core::catalogue::Classification,
    /// Requests per second each token may make (429 beyond it).
    #[arg(long, value_name = "PER_SECOND")]
    rate_limit: Option<f64>,
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
    state.jobs =
        Some(cim_tileserver::jobs::Jobs::start(cli.store.clone(), ingest_bin, state.max_upload_bytes as u64));
    if let Some(days) = cli.audit_keep_days {
        anyhow::ensure!(days.is_finite() && days >= 0.0, "--audit-keep-days {days} must be zero or more");
    }
    anyhow::ensure!(cli.audit_max_mb >= 1, "--audit-max-mb must be at least 1");
    let policy = cim_tileserver::audit::AuditPolicy {
        max_file_bytes: cli.audit_max_mb << 20,
        keep_days: cli.audit_keep_days,
    };
    // The default log opened with the state is replaced by the configured one.
    state.audit = None;
    let audit = claim_audit_log(&cli.store, cli.audit_instance.as_deref(), policy)?;
    state.audit = Some(std::sync::Arc::new(audit));
    if let Some(rps) = cli.rate_limit {
        anyhow::ensure!(
            rps.is_finite() && rps >= 1.0,
            "--rate-limit {rps} must be at least 1 request per second"
        );
        state.rate_limit = Some(std::sync::Arc::new(cim_tileserver::access::RateLimiter::new(rps)));
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
    axum::serve(listener, app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
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
    let open =
        |name: Option<&str>| AuditLog::open_instance(store, name, policy).context("opening the audit log");
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
