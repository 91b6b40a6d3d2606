//! `idse-gateway`: serves the IDSE sync protocol over SQLite (default, zero configuration) or
//! Postgres / Supabase.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use idse_gateway::Limits;
use idse_store::OpenOptions;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "idse-gateway", version, about = "The IDSE sync gateway")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "IDSE_GATEWAY_ADDR", default_value = "127.0.0.1:8000")]
    addr: SocketAddr,
    /// `postgres://…` for Postgres / Supabase, or a SQLite file (`sqlite:PATH` or a path).
    /// Also read from DATABASE_URL, then SUPABASE_DB_URL. Default: a SQLite file in the user's
    /// data folder.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true, global = true)]
    database: Option<String>,
    /// Largest request body, in bytes.
    #[arg(long, env = "IDSE_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Largest text of one stage, in bytes.
    #[arg(long, env = "IDSE_MAX_ARTIFACT_BYTES", default_value_t = 1024 * 1024)]
    max_artifact_bytes: usize,
    /// Database connections (Postgres: at least 3) or readers (SQLite).
    #[arg(long, default_value_t = 16)]
    max_connections: u32,
    /// SQLite: fsync on every commit, so a power cut loses nothing answered 200.
    #[arg(long)]
    sqlite_full_sync: bool,
    /// Postgres: open all --max-connections at start and keep them, so a server that other
    /// clients fill up later cannot leave a burst of requests waiting on refused connections.
    #[arg(long, env = "IDSE_HOLD_CONNECTIONS")]
    hold_connections: bool,
    /// Also accept Supabase Auth JWTs signed with this secret (the project's JWT secret).
    #[arg(long, env = "SUPABASE_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// A name the gateway is reached by (e.g. agency.example.com), accepted by /mcp besides
    /// loopback; repeat for several.
    #[arg(long = "public-host", value_name = "HOST")]
    public_hosts: Vec<String>,
    /// Log lines as JSON objects instead of text.
    #[arg(long)]
    log_json: bool,
    /// Serve HTTPS with this certificate chain (PEM), instead of plain HTTP behind a TLS proxy.
    #[arg(long, env = "IDSE_TLS_CERT", requires = "tls_key", value_name = "PEM")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "IDSE_TLS_KEY", requires = "tls_cert", value_name = "PEM")]
    tls_key: Option<PathBuf>,
    /// Seconds between looks at --tls-cert and --tls-key for a renewed certificate; 0 reads
    /// them again only on SIGHUP.
    #[arg(long, env = "IDSE_TLS_CHECK_SECONDS", default_value_t = idse_gateway::TLS_CHECK_EVERY.as_secs(), value_name = "SECONDS")]
    tls_check_seconds: u64,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Write a consistent copy of the embedded SQLite database to a new file; safe while the
    /// gateway runs. Restore by starting a gateway with `--database` set to the copy.
    Backup {
        /// The new file (an existing file is never overwritten).
        file: PathBuf,
    },
    /// Copy every project (same ids, sessions and full history) and token of --database into
    /// another database: the embedded SQLite file into a team's Postgres, say. Stop the gateway
    /// on --database first; running the copy again copies only what is missing.
    Copy {
        /// The destination: `postgres://…` (Supabase's session pooler or a direct connection)
        /// or a SQLite file.
        #[arg(long, value_name = "URL")]
        to: String,
        /// Copy the project named OLD (or with id OLD) in the source as NEW, e.g. when the
        /// destination holds another project of that name; repeat for several.
        #[arg(long = "rename", value_name = "OLD=NEW")]
        renames: Vec<String>,
    },
    /// Manage the bearer tokens of a team gateway (with no tokens it serves loopback only).
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, clap::Subcommand)]
enum TokenAction {
    /// Create a token; it is printed once and only its hash is kept.
    Create {
        #[arg(long)]
        name: String,
        /// The token can pull, list and read status, but not push.
        #[arg(long)]
        read_only: bool,
    },
    /// List tokens (names, never secrets).
    List,
    /// Revoke a token at once.
    Revoke { name: String },
}

async fn tokens(store: &dyn idse_store::Store, action: &TokenAction) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    match action {
        TokenAction::Create { name, read_only } => {
            if name.trim().is_empty() {
                bail!("a token needs a name, e.g. --name ci");
            }
            let token = idse_gateway::new_token();
            store
                .create_token(name, &idse_gateway::token_hash(&token), *read_only, now)
                .await
                .with_context(|| format!("while creating token {name}"))?;
            println!("{token}");
            eprintln!(
                "Created {}token `{name}`. Copy it now: it is not shown again. Restart the gateway if it was running without tokens.",
                if *read_only { "read-only " } else { "" }
            );
        }
        TokenAction::List => {
            for t in store.tokens().await.context("while listing tokens")? {
                let state = match t.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "live".to_owned(),
                };
                let kind = if t.read_only {
                    "read-only"
                } else {
                    "read-write"
                };
                println!(
                    "{:<24} {kind:<10} created {}  {state}",
                    t.name,
                    t.created_at.format("%Y-%m-%d %H:%M")
                );
            }
        }
        TokenAction::Revoke { name } => {
            if !store
                .revoke_token(name, now)
                .await
                .context("while revoking")?
            {
                bail!("there is no live token named `{name}` (see `idse-gateway token list`)");
            }
            eprintln!("Revoked token `{name}`.");
        }
    }
    Ok(())
}

fn backup(database: &str, file: &std::path::Path) -> anyhow::Result<()> {
    if idse_store::is_postgres(database) {
        bail!(
            "this gateway keeps its data in Postgres; back that up with pg_dump, or with your \
             Supabase project's backups (`backup` copies the embedded SQLite file)"
        );
    }
    let done = idse_store::SqliteStore::backup(database, file)
        .with_context(|| format!("while backing up {database}"))?;
    println!(
        "Backed up {} project(s) and {} revision(s), {} bytes, to {}",
        done.projects,
        done.revisions,
        done.bytes,
        done.path.display()
    );
    Ok(())
}

async fn copy(
    from: &str,
    to: &str,
    renames: &[String],
    options: &OpenOptions,
) -> anyhow::Result<()> {
    let renames = idse_store::Renames::parse(renames)?;
    let source_file = idse_store::SqliteStore::existing_file(from);
    if !idse_store::is_postgres(from) && source_file.is_none() {
        bail!("there is no database file at {from}; name the gateway's database with --database");
    }
    // The same file under two spellings (`./a.db`, `sqlite:a.db`) is the same database.
    let canonical = |f: PathBuf| std::fs::canonicalize(f).ok();
    let same_file = match (
        source_file.and_then(canonical),
        idse_store::SqliteStore::existing_file(to).and_then(canonical),
    ) {
        (Some(source), Some(dest)) => source == dest,
        _ => false,
    };
    if from.trim() == to.trim() || same_file {
        bail!(
            "--to names the database the copy is made from ({}); name another one",
            redact(to)
        );
    }
    let source = idse_store::open(from, options)
        .await
        .with_context(|| format!("while opening the database to copy from, {}", redact(from)))?;
    let dest = idse_store::open(to, options)
        .await
        .with_context(|| format!("while opening the database to copy to, {}", redact(to)))?;
    // The source may come from DATABASE_URL or SUPABASE_DB_URL: say which it is.
    eprintln!(
        "copying from {} ({}) to {} ({})",
        redact(from),
        source.kind(),
        redact(to),
        dest.kind()
    );
    let report = idse_store::copy(source.as_ref(), dest.as_ref(), &renames, &mut |step| {
        use idse_store::{CopyStep, Imported};
        let (what, outcome) = match step {
            CopyStep::Project {
                name,
                renamed,
                id,
                revisions,
                outcome,
            } => (
                format!(
                    "project {name}{} ({id}, {revisions} revision(s))",
                    renamed.map(|new| format!(" as {new}")).unwrap_or_default()
                ),
                outcome,
            ),
            CopyStep::Token { name, outcome } => (format!("token {name}"), outcome),
        };
        match outcome {
            Ok(Imported::Copied) => eprintln!("copied {what}"),
            Ok(Imported::AlreadyThere) => eprintln!("already there: {what}"),
            Err(e) => eprintln!("not copied: {what}: {e}"),
        }
    })
    .await;
    let report = match report {
        // Found before anything was written: no need to say what was copied.
        Err(idse_store::CopyError::Rename(e)) => return Err(e.into()),
        other => other.context(
            "while copying; every project copied so far is whole, and running the copy again \
             copies the rest",
        )?,
    };
    println!(
        "Copied {} project(s) with {} revision(s) and {} token(s) to {}; {} project(s) and {} \
         token(s) were there already.",
        report.projects_copied,
        report.revisions_copied,
        report.tokens_copied,
        redact(to),
        report.projects_there,
        report.tokens_there
    );
    if !report.refused.is_empty() {
        bail!(
            "{} item(s) were not copied, as said above; everything else was",
            report.refused.len()
        );
    }
    Ok(())
}

fn default_database() -> anyhow::Result<String> {
    let dir: PathBuf = dirs::data_dir()
        .context("while finding the user's data folder; pass --database instead")?
        .join("idse");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("while creating the data folder {}", dir.display()))?;
    Ok(dir.join("gateway.sqlite3").display().to_string())
}

/// The URL without its password, for logs: the user part's (`user:***@`) and a `password=`
/// parameter's, which libpq-style URLs such as `postgres:///agency?host=/run/postgresql&password=…`
/// carry.
fn redact(url: &str) -> String {
    let shown = match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    };
    // Every `…password=` parameter (`sslpassword` unlocks a client key) after a `?` or `&`,
    // wherever the parameters begin: an `@` among them would have been taken for the end of a
    // user part above.
    let mut out = String::with_capacity(shown.len());
    let mut rest = shown.as_str();
    while let Some(i) = rest.find(['?', '&']) {
        out.push_str(&rest[..=i]);
        rest = &rest[i + 1..];
        let end = rest.find('&').unwrap_or(rest.len());
        if let Some((key, _)) = rest[..end].split_once('=') {
            if key.to_ascii_lowercase().ends_with("password") {
                out.push_str(key);
                out.push_str("=***");
                rest = &rest[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn main() -> std::process::ExitCode {
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line naming each cause, as `idse` prints its errors; `main` returning the
            // error would print its Debug form, with a stack trace whenever RUST_BACKTRACE is set.
            eprintln!("error: {}", causes(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, joined by ": ", leaving out a cause that only repeats the one
/// before it (sqlx's database errors quote their source).
fn causes(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

fn run(args: Args) -> anyhow::Result<()> {
    let database = match args
        .database
        .clone()
        .or_else(|| std::env::var("SUPABASE_DB_URL").ok())
    {
        Some(url) if !url.trim().is_empty() => url,
        _ => default_database()?,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    // TOKIO_WORKER_THREADS, when set, is the operator's choice (tokio reads it).
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if let Some(threads) = idse_store::runtime_threads(&database, cores) {
            runtime.worker_threads(threads);
        }
    }
    runtime
        .enable_all()
        .build()
        .context("while starting the async runtime")?
        .block_on(serve(args, database))
}

async fn serve(args: Args, database: String) -> anyhow::Result<()> {
    // Postgres's notices ("relation … already exists, skipping", from the idempotent
    // migrations on every start) are not news to an operator.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx::postgres::notice=warn"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(idse_gateway::colour_logs())
        .with_writer(std::io::stderr);
    if args.log_json {
        logs.json().init();
    } else {
        logs.init();
    }

    // Every connection holds a file descriptor, and many systems start a process with a soft
    // limit of 1,024 open files, far below its hard limit: a team gateway would refuse
    // connections long before the machine runs short. Raised to the hard limit (as Go's
    // runtime does for every program).
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(open_files) => tracing::debug!(open_files, "limit of open files"),
        Err(e) => tracing::warn!(error = %e, "could not raise the limit of open files"),
    }
    if args.max_artifact_bytes > args.max_body_bytes {
        bail!("--max-artifact-bytes must not exceed --max-body-bytes");
    }
    if let Some(Command::Backup { file }) = &args.command {
        return backup(&database, file);
    }
    let options = OpenOptions {
        max_connections: args.max_connections,
        sqlite_full_sync: args.sqlite_full_sync,
        hold_connections: args.hold_connections,
        ..OpenOptions::default()
    };
    if let Some(Command::Copy { to, renames }) = &args.command {
        return copy(&database, to, renames, &options).await;
    }
    let store = idse_store::open(&database, &options)
        .await
        .with_context(|| format!("while opening the database {}", redact(&database)))?;
    tracing::info!(store = store.kind(), database = %redact(&database), "store ready");
    if let Some(Command::Token { action }) = &args.command {
        return tokens(store.as_ref(), action).await;
    }
    let live = store
        .tokens()
        .await
        .context("while reading the gateway's tokens")?
        .iter()
        .filter(|t| t.revoked_at.is_none())
        .count();
    let jwt = args
        .jwt_secret
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(idse_gateway::JwtVerifier::hs256);
    let auth = idse_gateway::AuthMode::for_listener(args.addr, live + usize::from(jwt.is_some()))
        .map_err(anyhow::Error::msg)?;
    if auth == idse_gateway::AuthMode::Open {
        tracing::info!("open mode: no tokens, loopback only");
    }

    // Read before binding: a wrong path is reported before anything listens.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            let tls = idse_gateway::Tls::from_pem_files(cert, key)?
                .checked_every(Some(std::time::Duration::from_secs(args.tls_check_seconds)));
            if let Some(warning) = tls.renewal_warning(chrono::Utc::now()) {
                tracing::warn!("{warning}");
            }
            tokio::spawn(reload_on_hangup(tls.clone()));
            Some(tls)
        }
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| {
            format!(
                "while binding {}; is another gateway running there?",
                args.addr
            )
        })?;
    let local = listener
        .local_addr()
        .context("while reading the bound address")?;
    {
        // The first stdout line is a contract: scripts read the port from it.
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "https" } else { "http" };
        writeln!(out, "listening on {scheme}://{local}").context("while writing to stdout")?;
        out.flush().context("while writing to stdout")?;
    }
    let limits = Limits {
        max_body_bytes: args.max_body_bytes,
        max_artifact_bytes: args.max_artifact_bytes,
    };
    let closing = idse_gateway::CancellationToken::new();
    let app = idse_gateway::app_with(
        Arc::from(store),
        limits,
        auth,
        jwt,
        args.public_hosts.clone(),
        closing.clone(),
    );
    let stop = closing.clone();
    tokio::spawn(async move {
        shutdown().await;
        tracing::info!("stopping");
        stop.cancel();
    });
    match tls {
        Some(tls) => idse_gateway::serve_tls(listener, app, closing, tls).await,
        None => idse_gateway::serve(listener, app, closing).await,
    }
    tracing::info!("stopped");
    Ok(())
}

/// Reads the certificate again on each SIGHUP (`systemctl reload`, or a renewal hook's
/// `kill -HUP`), instead of ending the gateway as SIGHUP otherwise would. The signal is taken
/// over when this is called, so call it before the gateway says it listens.
fn reload_on_hangup(tls: idse_gateway::Tls) -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    async move {
        #[cfg(unix)]
        {
            let mut hangup = match hangup {
                Ok(hangup) => hangup,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGHUP; the certificate is still read again when its files change");
                    return;
                }
            };
            while hangup.recv().await.is_some() {
                let tls = tls.clone();
                // Reading files blocks; the runtime's threads serve requests.
                let reading =
                    tokio::task::spawn_blocking(move || tls.reload_and_report(chrono::Utc::now()));
                if let Err(e) = reading.await {
                    tracing::error!(error = %e, "reading the certificate again failed");
                }
            }
        }
        #[cfg(not(unix))]
        drop(tls);
    }
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact("postgres://idse:secret@db:5432/x"),
            "postgres://idse:***@db:5432/x"
        );
        assert_eq!(redact("/tmp/a.sqlite3"), "/tmp/a.sqlite3");
        assert_eq!(
            redact("postgres:///agency?host=/run/postgresql&password=s3cret&sslmode=disable"),
            "postgres:///agency?host=/run/postgresql&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://idse:p@ss?w0rd@db/x?Password=two&application_name=a"),
            "postgres://idse:***@db/x?Password=***&application_name=a"
        );
        assert_eq!(
            redact("postgres://db/x?password=s3cret&application_name=a@b"),
            "postgres://db/x?password=***&application_name=a@b"
        );
        assert_eq!(
            redact("postgres://db/x?sslpassword=k&password=&sslmode=require"),
            "postgres://db/x?sslpassword=***&password=***&sslmode=require"
        );
        // No password to hide: the URL as it was.
        assert_eq!(
            redact("postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/agency"),
            "postgres://postgres@%2Fvar%2Frun%2Fpostgresql:5432/agency"
        );
    }
}
