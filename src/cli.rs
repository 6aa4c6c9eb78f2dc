//! Operator commands of the `telebot` binary beyond `serve`: tokens straight in the database,
//! and `ctl` against a running instance's API.

use anyhow::{Context, bail};

use crate::accounts::AccessError;
use crate::config::Config;
use crate::domain::{Role, utc_minutes};

/// A command given wrong input: the message says what to change; the binary exits with 2, as
/// for any other usage error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The command-line form of an input error: the flag (or where the value came from) it is about.
fn usage(e: AccessError) -> anyhow::Error {
    match e {
        AccessError::Invalid { field, message } => {
            let hint = match field {
                "agent_id" => " (pass --agent-id with the agent's id)",
                _ => "",
            };
            let flag = match field {
                "password" => {
                    "the password (TELEBOT_PASSWORD or the first line of standard input)".to_owned()
                }
                other => format!("--{}", other.replace('_', "-")),
            };
            UsageError(format!("{flag}: {message}{hint}")).into()
        }
        other => other.into(),
    }
}

fn parse_role(role: &str, allowed: &str) -> anyhow::Result<Role> {
    role.parse()
        .map_err(|_| UsageError(format!("--role: unknown role {role:?}; one of {allowed}")).into())
}

/// The base URL `ctl` talks to: it needs its scheme.
pub fn ctl_base(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).ok().filter(|u| u.has_host());
    match parsed {
        Some(u) if matches!(u.scheme(), "http" | "https") => {
            Ok(url.trim_end_matches('/').to_owned())
        }
        _ => Err(UsageError(format!(
            "--url / TELEBOT_URL: {url:?} is not a base URL; give the scheme too, e.g. http://127.0.0.1:8080"
        ))
        .into()),
    }
}

/// `telebot token create`: prints the new token once.
pub async fn create_token(
    config: &Config,
    role: &str,
    name: &str,
    agent_id: Option<i64>,
) -> anyhow::Result<()> {
    let role = parse_role(role, "admin, operator, agent or service")?;
    let store = crate::app::open_store(config).await?;
    let created = crate::accounts::issue_token(&store, name, role, agent_id, "cli").await;
    store.close().await;
    let created = created.map_err(usage)?;
    println!("{}", created.token);
    eprintln!(
        "token #{} ({}, {}) created; it is shown only now",
        created.info.id, created.info.name, created.info.role
    );
    Ok(())
}

/// `telebot token list`: every token with its role, state and last use (never the secret).
pub async fn list_tokens(config: &Config) -> anyhow::Result<()> {
    let store = crate::app::open_store(config).await?;
    let tokens = store.list_tokens().await;
    store.close().await;
    let tokens = tokens?;
    println!(
        "{:>5}  {:<8}  {:<8}  {:<16}  {:<16}  NAME",
        "ID", "ROLE", "STATE", "CREATED (UTC)", "LAST USED"
    );
    for t in tokens {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else {
            "active"
        };
        println!(
            "{:>5}  {:<8}  {:<8}  {:<16}  {:<16}  {}{}",
            t.id,
            t.role.as_str(),
            state,
            utc_minutes(t.created_at),
            t.last_used_at
                .map(utc_minutes)
                .unwrap_or_else(|| "never".to_owned()),
            t.name,
            t.agent_id
                .map(|a| format!(" (agent #{a})"))
                .unwrap_or_default(),
        );
    }
    Ok(())
}

/// `telebot token revoke ID`: the token stops working at once, also on other instances.
pub async fn revoke_token(config: &Config, id: i64) -> anyhow::Result<()> {
    let store = crate::app::open_store(config).await?;
    let revoked = crate::accounts::revoke_token(&store, id, "cli").await;
    store.close().await;
    let token = revoked.map_err(usage)?;
    eprintln!(
        "token #{} ({}, {}) revoked",
        token.id, token.name, token.role
    );
    Ok(())
}

/// `telebot account set`: creates an account, or sets a new password (and, with `role`, a new
/// role) for an existing one.
pub async fn set_account(
    config: &Config,
    username: &str,
    role: Option<&str>,
) -> anyhow::Result<()> {
    let role = role
        .map(|r| parse_role(r, "admin or operator"))
        .transpose()?;
    let password = match std::env::var("TELEBOT_PASSWORD") {
        Ok(p) => p,
        Err(_) => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_owned()
        }
    };
    let store = crate::app::open_store(config).await?;
    let account = crate::accounts::set_account(&store, username, &password, role, "cli").await;
    store.close().await;
    let account = account.map_err(usage)?;
    eprintln!("account {} ({}) saved", account.username, account.role);
    Ok(())
}

async fn call(request: reqwest::RequestBuilder) -> anyhow::Result<serde_json::Value> {
    let response = request
        .send()
        .await
        .context("the instance did not answer")?;
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or("request failed");
        bail!("{status}: {message}");
    }
    Ok(body)
}

/// `telebot ctl subsystems`
pub async fn subsystems(base: &str, token: &str) -> anyhow::Result<()> {
    let url = format!("{base}/api/v1/admin/subsystems");
    let list = call(reqwest::Client::new().get(url).bearer_auth(token)).await?;
    println!(
        "{:<28} {:<11} {:>10} {:>9}  last error",
        "subsystem", "state", "uptime", "restarts"
    );
    for s in list.as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<11} {:>9}s {:>9}  {}",
            s["path"].as_str().unwrap_or(""),
            s["state"].as_str().unwrap_or(""),
            s["uptime_secs"].as_u64().unwrap_or(0),
            s["restarts"].as_u64().unwrap_or(0),
            s["last_error"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `telebot ctl restart <name>`
pub async fn restart(base: &str, token: &str, name: &str) -> anyhow::Result<()> {
    let url = format!(
        "{base}/api/v1/admin/subsystems/{}/restart",
        name.replace('/', ".")
    );
    let s = call(reqwest::Client::new().post(url).bearer_auth(token)).await?;
    println!(
        "{} restarted: {} (restarts {})",
        s["path"].as_str().unwrap_or(name),
        s["state"].as_str().unwrap_or("?"),
        s["restarts"].as_u64().unwrap_or(0)
    );
    Ok(())
}
