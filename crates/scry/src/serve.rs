//! `scry serve` (the HTTP server and a worker in one process), `scry token` (API tokens for it)
//! and `scry user` (local users of its workbench). The server itself lives in scry-server; this module builds its state from the
//! configuration, binds the address, and stops both halves cleanly on Ctrl-C or SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, anyhow};
use scry_engine::Progress;
use scry_engine::access::{self, Role};
use scry_engine::config::LoadedConfig;
use scry_engine::worker::{WorkReport, Worker};

use crate::cli::{ServeArgs, TokenCommand, UserCommand};
use crate::queue::{engine_and_rules, report_line, settings, stop_signal};
use crate::{format_ms, open_store, runtime, usage};

/// `scry serve`.
pub(crate) fn serve(
    args: &ServeArgs,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| loaded.config.server.listen.clone());
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        let (engine, automation) = engine_and_rules(loaded, &store, false).await?;
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        let limits = scry_server::listen::Limits::from_config(loaded).map_err(usage)?;
        let worker = (!args.no_worker)
            .then(|| {
                anyhow::Ok(
                    Worker::new(
                        Arc::clone(&engine),
                        Arc::clone(&store),
                        Some(Arc::clone(&automation)),
                        settings(loaded, Vec::new(), args.concurrency)?,
                    )
                    .with_feeds(loaded.feeds().map_err(usage)?),
                )
            })
            .transpose()?;
        if !quiet {
            eprintln!(
                "serving {}://{address}/ on {}{}; Ctrl-C or SIGTERM stops it",
                limits.scheme(),
                scry_store::redact(&url),
                if worker.is_some() {
                    ", with a worker"
                } else {
                    " (no worker: run `scry worker` against this store)"
                }
            );
            if store.accounts().await?.is_empty() {
                eprintln!(
                    "no API token exists yet: `scry token create --role admin NAME` makes one to log in with"
                );
            }
        }
        let state = scry_server::AppState::new(
            Arc::clone(&store),
            Arc::new(loaded.clone()),
            engine,
            automation,
        );
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let server = tokio::spawn(scry_server::serve(
            state,
            listener,
            limits,
            stopped(stop_rx.clone()),
        ));
        let signal = tokio::spawn(async move {
            stop_signal().await;
            let _ = stop_tx.send(true);
        });
        if let Some(worker) = worker {
            let mut on_pass = |pass: &WorkReport| {
                if !quiet && *pass != WorkReport::default() {
                    eprintln!("{}", report_line(pass));
                }
            };
            worker
                .run(stopped(stop_rx.clone()), &Progress::default(), &mut on_pass)
                .await?;
        }
        server
            .await
            .map_err(|e| anyhow!("the server stopped abnormally: {e}"))?
            .context("serving")?;
        signal.abort();
        if !quiet {
            eprintln!("stopped");
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `scry token create|list|revoke`.
pub(crate) fn token(
    command: TokenCommand,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        match command {
            TokenCommand::Create { name, role, days } => {
                let role: Role = role.parse().map_err(usage)?;
                let (secret, token) = access::create_token(
                    store.as_ref(),
                    &name,
                    role,
                    days.map(|d| i64::from(d) * 86_400_000),
                )
                .await
                .map_err(|e| match e {
                    access::AccessError::InvalidName(_)
                    | access::AccessError::Store(scry_store::StoreError::Conflict(_)) => usage(e),
                    other => anyhow!(other),
                })?;
                out!("{secret}");
                eprintln!(
                    "token {} ({}) created{}; the secret above is shown this once",
                    token.name,
                    token.role,
                    token
                        .expires_at
                        .map(|at| format!(", valid until {}", format_ms(at)))
                        .unwrap_or_default()
                );
            }
            TokenCommand::List => {
                let tokens = store.accounts().await?;
                if tokens.is_empty() {
                    eprintln!("no tokens; `scry token create --role admin NAME` makes one");
                }
                out!(
                    "{:<24} {:<6} {:<8} {:<20} {:<20} STATE",
                    "NAME",
                    "KIND",
                    "ROLE",
                    "CREATED",
                    "LAST USED"
                );
                let now = scry_engine::automation::now_ms();
                for t in tokens {
                    let state = match (t.revoked_at, t.expires_at) {
                        (Some(at), _) => format!("revoked {}", format_ms(at)),
                        (None, Some(at)) if at <= now => format!("expired {}", format_ms(at)),
                        (None, Some(at)) => format!("valid until {}", format_ms(at)),
                        (None, None) => "valid".to_owned(),
                    };
                    out!(
                        "{:<24} {:<6} {:<8} {:<20} {:<20} {state}",
                        t.name,
                        t.kind,
                        t.role,
                        format_ms(t.created_at),
                        t.last_used_at
                            .map(format_ms)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            TokenCommand::Revoke { name } => {
                return revoke(store.as_ref(), &name, "token").await;
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `scry user add|revoke`.
pub(crate) fn user(
    command: UserCommand,
    loaded: &LoadedConfig,
    store_url: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let url = loaded.store_url(store_url);
    let runtime = runtime()?;
    runtime.block_on(async {
        let store = open_store(&url).await?;
        match command {
            UserCommand::Add { name, role } => {
                let role: Role = role.parse().map_err(usage)?;
                let password = read_password(&name)?;
                let password = password.as_str();
                let account = access::create_user(store.as_ref(), &name, role, password)
                    .await
                    .map_err(|e| match e {
                        access::AccessError::InvalidName(_)
                        | access::AccessError::WeakPassword
                        | access::AccessError::Store(scry_store::StoreError::Conflict(_)) => {
                            usage(e)
                        }
                        other => anyhow!(other),
                    })?;
                eprintln!(
                    "user {} ({}) added; they log in to the workbench with their password",
                    account.name, account.role
                );
            }
            UserCommand::Revoke { name } => {
                return revoke(store.as_ref(), &name, "user").await;
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// The new user's password: asked for twice, without echo, at a terminal; else the first line
/// of standard input (`scry user add dana < pw`).
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {name}: "))
            .context("reading the password at the terminal")?;
        let again = rpassword::prompt_password("the same password again: ")
            .context("reading the password at the terminal")?;
        if first != again {
            return Err(usage(anyhow!(
                "the two passwords differ; no user was added"
            )));
        }
        return Ok(first);
    }
    let mut password = String::new();
    std::io::stdin()
        .read_line(&mut password)
        .context("reading the password from standard input")?;
    Ok(password.trim_end_matches(['\r', '\n']).to_owned())
}

/// Revokes the account `name` (a token or a user) with its sessions; exit 1 when none was live.
async fn revoke(store: &dyn scry_store::Store, name: &str, what: &str) -> anyhow::Result<ExitCode> {
    if !store
        .revoke_account(name, scry_engine::automation::now_ms())
        .await?
    {
        eprintln!("no live {what} named {name:?}");
        return Ok(ExitCode::from(1));
    }
    eprintln!("{what} {name} revoked, with its browser sessions");
    Ok(ExitCode::SUCCESS)
}
