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
        /// Base URL of the instance (default: http://<http.addr>).
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
        /// admin or operator.
        #[arg(long, default_value = "operator")]
        role: String,
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
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => telebot::serve(config).await,
            Command::Migrate => telebot::migrate(&config).await,
            Command::CheckConfig => {
                println!("configuration is valid");
                for line in config.summary() {
                    println!("  {line}");
                }
                Ok(())
            }
            Command::Account {
                action: AccountAction::Set { username, role },
            } => telebot::cli::set_account(&config, &username, &role).await,
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
                let base = url.unwrap_or_else(|| format!("http://{}", config.http.addr));
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
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("telebot: {e:#}");
            ExitCode::FAILURE
        }
    }
}
