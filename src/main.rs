//! The `telebot` command: parse the command line, load the configuration, set up logs and
//! metrics, run the library, and turn the outcome into an exit code (0 ok, 1 failure, 2 bad
//! configuration).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use telebot::config::{Config, FileLayer};

#[derive(Parser)]
#[command(
    name = "telebot",
    version,
    about = "Sell services and digital goods through a Telegram bot, paid in USDT"
)]
struct Cli {
    /// Configuration file (default: ./config.toml if present, else built-in defaults).
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the service (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate the configuration, print what would run where, and exit.
    CheckConfig,
    /// Dashboard accounts.
    Account {
        #[command(subcommand)]
        action: AccountAction,
    },
    /// API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Operate a running instance through its API.
    Ctl {
        /// Base URL of the instance, with its scheme (default: http://<http.addr> of the
        /// configuration).
        #[arg(long, env = "TELEBOT_URL")]
        url: Option<String>,
        /// An admin API token.
        #[arg(long, env = "TELEBOT_TOKEN", hide_env_values = true)]
        token: String,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(Subcommand)]
enum AccountAction {
    /// Create an account or set its password and role; the password is read from
    /// TELEBOT_PASSWORD or, if unset, from the first line of standard input.
    Set {
        #[arg(long)]
        username: String,
        /// admin or operator; without it an existing account keeps its role and a new one is
        /// an operator.
        #[arg(long)]
        role: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token and print it (it is shown only this once).
    Create {
        /// admin, operator, agent or service.
        #[arg(long)]
        role: String,
        #[arg(long)]
        name: String,
        /// The agent an agent token acts as.
        #[arg(long)]
        agent_id: Option<i64>,
    },
    /// List every token: id, role, active or revoked, created, last used (never the secret).
    List,
    /// Revoke a token by its id; it stops working at once.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
enum CtlAction {
    /// List the supervised subsystems with their state, uptime and restarts.
    Subsystems,
    /// Restart a subsystem (and everything under it), e.g. `payments` or `payments/matcher`.
    Restart { name: String },
}

/// An error and its causes on one line, each said once (a message that already quotes its
/// cause does not get it repeated).
fn report(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let layer = match cli.config {
        Some(path) => FileLayer::Explicit(path),
        None => FileLayer::Default,
    };
    let config = match Config::load(layer) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("telebot: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    telebot::telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telebot: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let serving = matches!(command, Command::Serve);
    let result = runtime.block_on(async move {
        match command {
            Command::Serve => telebot::serve(config).await,
            Command::Migrate => telebot::migrate(&config).await,
            Command::CheckConfig => {
                println!("configuration is valid");
                for line in config.summary() {
                    println!("  {line}");
                }
                for warning in config.warnings() {
                    println!("warning: {warning}");
                }
                Ok(())
            }
            Command::Account {
                action: AccountAction::Set { username, role },
            } => telebot::cli::set_account(&config, &username, role.as_deref()).await,
            Command::Token {
                action:
                    TokenAction::Create {
                        role,
                        name,
                        agent_id,
                    },
            } => telebot::cli::create_token(&config, &role, &name, agent_id).await,
            Command::Token {
                action: TokenAction::List,
            } => telebot::cli::list_tokens(&config).await,
            Command::Token {
                action: TokenAction::Revoke { id },
            } => telebot::cli::revoke_token(&config, id).await,
            Command::Ctl { url, token, action } => {
                let base = telebot::cli::ctl_base(
                    &url.unwrap_or_else(|| format!("http://{}", config.http.addr)),
                )?;
                match action {
                    CtlAction::Subsystems => telebot::cli::subsystems(&base, &token).await,
                    CtlAction::Restart { name } => {
                        telebot::cli::restart(&base, &token, &name).await
                    }
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // said once: the service says it in its log, a command on standard error
        Err(e) if serving => {
            tracing::error!("{}", report(&e));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("telebot: {}", report(&e));
            if e.downcast_ref::<telebot::cli::UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
