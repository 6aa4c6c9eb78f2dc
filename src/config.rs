//! Layered configuration: the embedded `config.toml` defaults, then a file, then
//! `TELEBOT__<SECTION>__<KEY>` environment variables.
//!
//! The embedded defaults double as the schema for the other layers: a key that is not in them is
//! refused (a typo must not be silently ignored), and an environment value is read with the type
//! of its default. Every failure names the key and the problem, so `main` can print it and exit 2.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::domain::{Money, TronAddress};

/// The defaults, compiled in from the documented file at the repository root.
pub const DEFAULTS_TOML: &str = include_str!("../config.toml");

/// The bot username of the embedded default, for the demo's simulator.
pub const DEMO_BOT_USERNAME: &str = "telebot_demo_bot";

/// Prefix of environment overrides.
pub const ENV_PREFIX: &str = "TELEBOT__";

/// A configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("unknown configuration key `{key}` (from {origin})")]
    UnknownKey { key: String, origin: String },
    #[error("configuration key `{key}` (from {origin}): {problem}")]
    Invalid {
        key: String,
        origin: String,
        problem: String,
    },
}

impl ConfigError {
    fn invalid(key: &str, problem: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.to_owned(),
            origin: "validation".to_owned(),
            problem: problem.into(),
        }
    }
}

/// A secret value: usable by the code, never shown by `Debug` or in logs.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_set(&self) -> bool {
        !self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_set() {
            "Secret(<set>)"
        } else {
            "Secret(<empty>)"
        })
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// Parses durations such as `"500ms"`, `"30s"`, `"15m"`, `"1h30m"`, `"7d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "{s:?} is not a duration like \"30s\", \"15m\" or \"1h30m\""
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86_400)),
            "" => return Err(format!("{s:?}: a unit is missing (ms, s, m, h or d)")),
            other => return Err(format!("{s:?}: unknown unit {other:?} (ms, s, m, h or d)")),
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// Chat ids written as numbers (in a file) or as text (from a comma list in the environment).
fn chat_ids<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<i64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(i64),
        Text(String),
    }
    Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(|id| match id {
            Id::Number(n) => Ok(n),
            Id::Text(t) => t
                .trim()
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("{t:?} is not a chat id"))),
        })
        .collect()
}

mod duration_str {
    use super::*;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub telegram: TelegramConfig,
    pub tron: TronConfig,
    pub payments: PaymentsConfig,
    pub stars: StarsConfig,
    pub security: SecurityConfig,
    pub supervision: SupervisionConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    pub public_url: String,
    pub body_limit_bytes: usize,
    #[serde(with = "duration_str")]
    pub request_timeout: Duration,
    #[serde(with = "duration_str")]
    pub shutdown_grace: Duration,
    #[serde(with = "duration_str")]
    pub header_read_timeout: Duration,
    #[serde(with = "duration_str")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: Secret,
    pub max_connections: u32,
    #[serde(with = "duration_str")]
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    pub url: Secret,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TelegramMode {
    Polling,
    Webhook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    En,
    Zh,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::Zh => "zh",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramConfig {
    pub token: Secret,
    pub api_url: String,
    pub mode: TelegramMode,
    pub webhook_secret: Secret,
    pub bot_username: String,
    pub shop_name: String,
    #[serde(deserialize_with = "chat_ids")]
    pub operator_chat_ids: Vec<i64>,
    #[serde(with = "duration_str")]
    pub session_idle_timeout: Duration,
    #[serde(with = "duration_str")]
    pub order_button_lifetime: Duration,
    pub default_language: Language,
}

impl TelegramConfig {
    /// No token: the bot talks to the built-in simulator (demo mode).
    pub fn is_simulated(&self) -> bool {
        !self.token.is_set()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TronSource {
    Demo,
    Trongrid,
    Fullnode,
    Both,
}

impl TronSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TronSource::Demo => "demo",
            TronSource::Trongrid => "trongrid",
            TronSource::Fullnode => "fullnode",
            TronSource::Both => "both",
        }
    }
}

/// When a seen transfer is final enough to pay an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmations {
    /// As soon as it is in a block.
    Seen,
    /// When its block is at least this many blocks deep.
    Blocks(u32),
    /// When its block is irreversible (at or below the solidified head).
    Solidified,
}

impl<'de> Deserialize<'de> for Confirmations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "seen" => Ok(Confirmations::Seen),
            "solidified" => Ok(Confirmations::Solidified),
            n => n
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .map(Confirmations::Blocks)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "{n:?}: expected \"seen\", \"solidified\" or a block count from 1 to 1000"
                    ))
                }),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TronConfig {
    pub source: TronSource,
    pub trongrid_url: String,
    pub trongrid_api_key: Secret,
    pub fullnode_url: String,
    pub usdt_contract: TronAddress,
    #[serde(with = "duration_str")]
    pub poll_interval: Duration,
    pub confirmations: Confirmations,
    #[serde(with = "duration_str")]
    pub resume_overlap: Duration,
    #[serde(with = "duration_str")]
    pub request_timeout: Duration,
    #[serde(with = "duration_str")]
    pub max_backoff: Duration,
    #[serde(with = "duration_str")]
    pub stall_threshold: Duration,
}

impl TronConfig {
    /// Payments come from the simulated chain, not TRON.
    pub fn is_demo(&self) -> bool {
        self.source == TronSource::Demo
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LatePaymentRule {
    CreditBalance,
    OperatorReview,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsConfig {
    #[serde(with = "duration_str")]
    pub window: Duration,
    pub amount_step: Money,
    pub max_slots: u32,
    #[serde(with = "duration_str")]
    pub quarantine: Duration,
    pub late_payment: LatePaymentRule,
    /// Unmatched transfers below this amount (dust, address-poisoning spam) are kept and listed
    /// for operators like any other, but raise no operator alert.
    pub unmatched_alert_min: Money,
    pub wallets: Vec<TronAddress>,
    #[serde(with = "duration_str")]
    pub commission_hold: Duration,
    /// Where order events are POSTed as signed JSON; empty turns merchant callbacks off.
    pub callback_url: String,
    /// HMAC-SHA256 key that signs each callback.
    pub callback_secret: Secret,
    /// How long one callback delivery may take before it counts as failed.
    #[serde(with = "duration_str")]
    pub callback_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityConfig {
    pub rate_limit_per_minute: u32,
    pub webhook_secret: Secret,
    #[serde(with = "duration_str")]
    pub webhook_replay_window: Duration,
    pub client_address_header: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionConfig {
    pub max_restarts: u32,
    #[serde(with = "duration_str")]
    pub restart_window: Duration,
    #[serde(with = "duration_str")]
    pub backoff_initial: Duration,
    #[serde(with = "duration_str")]
    pub backoff_max: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StarsConfig {
    /// Products with a Stars price offer "Pay with Stars" in the bot.
    pub enabled: bool,
    /// Every digital good and service must carry a Stars price.
    pub require_price: bool,
    /// Time a customer has to pay a Stars invoice.
    #[serde(with = "duration_str")]
    pub window: Duration,
    /// Time between comparisons of Telegram's Stars transactions with the recorded payments.
    #[serde(with = "duration_str")]
    pub reconcile_every: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub addr: String,
}

/// Where the file layer comes from.
#[derive(Debug, Clone)]
pub enum FileLayer {
    /// `--config PATH`: the file must exist.
    Explicit(PathBuf),
    /// `./config.toml` if present.
    Default,
    /// Defaults and environment only (tests).
    None,
}

impl Config {
    /// Loads the three layers with the process environment.
    pub fn load(file: FileLayer) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars())
    }

    /// Loads the layers with the given environment (tests pass their own).
    pub fn load_with_env(
        file: FileLayer,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let defaults = parse_table(DEFAULTS_TOML, Path::new("<embedded defaults>"))?;
        let mut merged = defaults.clone();
        let path = match file {
            FileLayer::Explicit(p) => Some(p),
            FileLayer::Default => {
                let p = PathBuf::from("config.toml");
                p.exists().then_some(p)
            }
            FileLayer::None => None,
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            let table = parse_table(&text, &path)?;
            overlay_file(&defaults, &mut merged, table, &path.display().to_string())?;
        }
        let env: BTreeMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        for (var, value) in env {
            overlay_env(&defaults, &mut merged, &var, &value)?;
        }
        Self::from_table(merged)
    }

    /// Loads from TOML text over the defaults (tests and `check-config`).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let defaults = parse_table(DEFAULTS_TOML, Path::new("<embedded defaults>"))?;
        let mut merged = defaults.clone();
        let table = parse_table(text, Path::new("<string>"))?;
        overlay_file(&defaults, &mut merged, table, "<string>")?;
        Self::from_table(merged)
    }

    fn from_table(table: toml::Table) -> Result<Config, ConfigError> {
        let config: Config =
            serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
                let key = e.path().to_string();
                let mut problem = e.into_inner().message().to_owned();
                if key.ends_with("addr") && problem.contains("socket address") {
                    problem.push_str(
                        "; give an IP address and a port, e.g. 127.0.0.1:8080 (0.0.0.0:8080 for every \
                         interface; a host name such as localhost is not accepted)",
                    );
                }
                ConfigError::Invalid {
                    key,
                    origin: "merged configuration".to_owned(),
                    problem,
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the rules that types alone cannot carry.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let url = self.database.url.expose();
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::invalid(
                "database.url",
                "must start with sqlite:, postgres:// or postgresql://",
            ));
        }
        let header = &self.security.client_address_header;
        if !header.is_empty() && reqwest::header::HeaderName::from_bytes(header.as_bytes()).is_err()
        {
            return Err(ConfigError::invalid(
                "security.client_address_header",
                "must be an HTTP header name, like x-forwarded-for",
            ));
        }
        if self.http.max_connections == 0 {
            return Err(ConfigError::invalid(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        for (key, d) in [
            ("http.header_read_timeout", self.http.header_read_timeout),
            ("http.idle_timeout", self.http.idle_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(ConfigError::invalid(key, "must be at least 100ms"));
            }
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::invalid(
                "database.max_connections",
                "must be at least 1",
            ));
        }
        let redis = self.redis.url.expose();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError::invalid(
                "redis.url",
                "must start with redis:// or rediss://",
            ));
        }
        for (key, value, may_be_empty) in [
            ("telegram.api_url", self.telegram.api_url.as_str(), true),
            ("tron.trongrid_url", self.tron.trongrid_url.as_str(), false),
            ("tron.fullnode_url", self.tron.fullnode_url.as_str(), false),
            ("http.public_url", self.http.public_url.as_str(), true),
            (
                "payments.callback_url",
                self.payments.callback_url.as_str(),
                true,
            ),
        ] {
            if value.is_empty() && may_be_empty {
                continue;
            }
            match reqwest::Url::parse(value) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
                // the value itself is never repeated: it may carry a password or an API key
                Ok(u) => {
                    return Err(ConfigError::invalid(
                        key,
                        format!("a {}: URL is not an http(s) URL", u.scheme()),
                    ));
                }
                Err(_) => {
                    return Err(ConfigError::invalid(
                        key,
                        "not an http(s) URL (like https://host/path)",
                    ));
                }
            }
        }
        if self.telegram.mode == TelegramMode::Webhook {
            if self.http.public_url.is_empty() {
                return Err(ConfigError::invalid(
                    "http.public_url",
                    "webhook mode needs the public URL Telegram will call",
                ));
            }
            if self.telegram.is_simulated() {
                return Err(ConfigError::invalid(
                    "telegram.mode",
                    "webhook mode needs telegram.token (the simulator is polled)",
                ));
            }
        }
        let name = &self.telegram.bot_username;
        if name.len() < 5
            || name.len() > 32
            || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(ConfigError::invalid(
                "telegram.bot_username",
                "5 to 32 letters, digits or underscores",
            ));
        }
        if self.telegram.shop_name.trim().is_empty() || self.telegram.shop_name.chars().count() > 64
        {
            return Err(ConfigError::invalid(
                "telegram.shop_name",
                "1 to 64 characters",
            ));
        }
        let step = self.payments.amount_step.micros();
        if !(1..=1_000_000).contains(&step) {
            return Err(ConfigError::invalid(
                "payments.amount_step",
                "must be between 0.000001 and 1",
            ));
        }
        if self.payments.unmatched_alert_min.micros() < 0 {
            return Err(ConfigError::invalid(
                "payments.unmatched_alert_min",
                "must not be negative",
            ));
        }
        if !(1..=100_000).contains(&self.payments.max_slots) {
            return Err(ConfigError::invalid(
                "payments.max_slots",
                "must be between 1 and 100000",
            ));
        }
        if self.payments.window < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "payments.window",
                "must be at least 1s",
            ));
        }
        if !self.payments.callback_url.is_empty() && !self.payments.callback_secret.is_set() {
            return Err(ConfigError::invalid(
                "payments.callback_secret",
                "merchant callbacks are signed: set a secret with payments.callback_url",
            ));
        }
        if self.payments.callback_timeout < Duration::from_millis(100) {
            return Err(ConfigError::invalid(
                "payments.callback_timeout",
                "must be at least 100ms",
            ));
        }
        match self.tron.source {
            TronSource::Demo => {
                if !self.payments.wallets.is_empty() {
                    return Err(ConfigError::invalid(
                        "tron.source",
                        "the demo chain cannot run with real wallets in payments.wallets; \
                         choose trongrid, fullnode or both",
                    ));
                }
                if !self.telegram.is_simulated() {
                    return Err(ConfigError::invalid(
                        "tron.source",
                        "the demo chain cannot run beside a real Telegram token; \
                         choose trongrid, fullnode or both",
                    ));
                }
            }
            _ => {
                if self.payments.wallets.is_empty() {
                    return Err(ConfigError::invalid(
                        "payments.wallets",
                        "at least one receiving wallet is needed for a real chain source",
                    ));
                }
            }
        }
        let mut seen = std::collections::HashSet::new();
        for w in &self.payments.wallets {
            if !seen.insert(w) {
                return Err(ConfigError::invalid(
                    "payments.wallets",
                    format!("{w} is listed twice"),
                ));
            }
        }
        if !(1..=100_000).contains(&self.security.rate_limit_per_minute) {
            return Err(ConfigError::invalid(
                "security.rate_limit_per_minute",
                "must be between 1 and 100000",
            ));
        }
        if self.tron.poll_interval < Duration::from_millis(10) {
            return Err(ConfigError::invalid(
                "tron.poll_interval",
                "must be at least 10ms",
            ));
        }
        if self.supervision.max_restarts == 0 {
            return Err(ConfigError::invalid(
                "supervision.max_restarts",
                "must be at least 1",
            ));
        }
        if self.supervision.backoff_initial > self.supervision.backoff_max {
            return Err(ConfigError::invalid(
                "supervision.backoff_initial",
                "must not exceed supervision.backoff_max",
            ));
        }
        if !self.metrics.addr.is_empty() && self.metrics.addr.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                "metrics.addr",
                "must be HOST:PORT or empty",
            ));
        }
        if !is_log_filter(&self.log.level) {
            return Err(ConfigError::invalid(
                "log.level",
                "must be trace, debug, info, warn, error or off, or directives like \
                 \"info,telebot::payments=debug\"",
            ));
        }
        Ok(())
    }

    /// Lines that say what runs where, for the start-up log and `check-config`. No secrets.
    pub fn summary(&self) -> Vec<String> {
        let db = if self.is_sqlite() {
            format!("database: SQLite at {}", self.sqlite_path().display())
        } else {
            format!(
                "database: PostgreSQL at {}",
                redact_url(self.database.url.expose())
            )
        };
        let redis = if self.redis.url.is_set() {
            format!(
                "rate limits: Redis at {}",
                redact_url(self.redis.url.expose())
            )
        } else {
            "rate limits: in-process".to_owned()
        };
        let telegram = if self.telegram.is_simulated() {
            "telegram: DEMO simulator (no token), built-in Bot API".to_owned()
        } else {
            format!(
                "telegram: {} mode, api {}",
                match self.telegram.mode {
                    TelegramMode::Polling => "polling",
                    TelegramMode::Webhook => "webhook",
                },
                if self.telegram.api_url.is_empty() {
                    "https://api.telegram.org"
                } else {
                    &self.telegram.api_url
                }
            )
        };
        let tron = match self.tron.source {
            TronSource::Demo => "tron: DEMO chain (transfers are simulated)".to_owned(),
            TronSource::Trongrid => format!("tron: TronGrid at {}", self.tron.trongrid_url),
            TronSource::Fullnode => format!("tron: full node at {}", self.tron.fullnode_url),
            TronSource::Both => format!(
                "tron: TronGrid at {} and full node at {}",
                self.tron.trongrid_url, self.tron.fullnode_url
            ),
        };
        vec![
            format!("http: {}", self.http.addr),
            db,
            redis,
            telegram,
            tron,
            format!(
                "payments: window {:?}, step {} USDT, {} slots per wallet, {} wallet(s)",
                self.payments.window,
                self.payments.amount_step,
                self.payments.max_slots,
                self.payments
                    .wallets
                    .len()
                    .max(usize::from(self.tron.source == TronSource::Demo))
            ),
            if self.payments.callback_url.is_empty() {
                "merchant callbacks: off".to_owned()
            } else {
                format!(
                    "merchant callbacks: {}",
                    redact_url(&self.payments.callback_url)
                )
            },
            if self.metrics.enabled {
                format!(
                    "metrics: /metrics on {}",
                    if self.metrics.addr.is_empty() {
                        self.http.addr.to_string()
                    } else {
                        self.metrics.addr.clone()
                    }
                )
            } else {
                "metrics: disabled".to_owned()
            },
        ]
    }

    /// What is valid but probably a mistake, in plain words (shown by `check-config` and at
    /// start).
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.telegram.is_simulated() && self.telegram.bot_username == DEMO_BOT_USERNAME {
            warnings.push(format!(
                "telegram.bot_username is still the demo's {DEMO_BOT_USERNAME:?} while a real \
                 telegram.token is set: referral and product links would name the wrong bot; set it \
                 to your bot's username (TELEBOT__TELEGRAM__BOT_USERNAME)"
            ));
        }
        warnings
    }

    pub fn is_sqlite(&self) -> bool {
        self.database.url.expose().starts_with("sqlite:")
    }

    /// The file behind a `sqlite:` URL.
    pub fn sqlite_path(&self) -> PathBuf {
        sqlite_path(self.database.url.expose())
    }
}

/// The file behind a `sqlite:` URL (`sqlite://data/x.db`, `sqlite:data/x.db`, query ignored).
pub fn sqlite_path(url: &str) -> PathBuf {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let rest = rest.split('?').next().unwrap_or(rest);
    PathBuf::from(rest)
}

/// A log filter that prints something: a level, or comma-separated `target=level` directives
/// (with at most one bare level as the default). A bare word that is not a level would be read
/// by tracing as a target name and silence every other log line, so it is refused.
fn is_log_filter(filter: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |s: &str| LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s.trim()));
    let directives: Vec<&str> = filter
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    !directives.is_empty()
        && directives.iter().all(|d| match d.rsplit_once('=') {
            Some((target, level)) => !target.trim().is_empty() && is_level(level),
            None => is_level(d),
        })
        && tracing_subscriber::EnvFilter::try_new(filter).is_ok()
}

/// Drops the password from a connection URL before it is logged.
pub fn redact_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparsable url>".to_owned(),
    }
}

fn parse_table(text: &str, path: &Path) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Syntax {
            path: path.to_owned(),
            message: e.message().to_owned(),
        })
}

fn overlay_file(
    defaults: &toml::Table,
    merged: &mut toml::Table,
    file: toml::Table,
    origin: &str,
) -> Result<(), ConfigError> {
    for (section, value) in file {
        let Some(toml::Value::Table(default_section)) = defaults.get(&section) else {
            return Err(ConfigError::UnknownKey {
                key: section,
                origin: origin.to_owned(),
            });
        };
        let toml::Value::Table(values) = value else {
            return Err(ConfigError::Invalid {
                key: section,
                origin: origin.to_owned(),
                problem: "must be a [section]".to_owned(),
            });
        };
        for (key, v) in values {
            if !default_section.contains_key(&key) {
                return Err(ConfigError::UnknownKey {
                    key: format!("{section}.{key}"),
                    origin: origin.to_owned(),
                });
            }
            if let Some(toml::Value::Table(target)) = merged.get_mut(&section) {
                target.insert(key, v);
            }
        }
    }
    Ok(())
}

fn overlay_env(
    defaults: &toml::Table,
    merged: &mut toml::Table,
    var: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let path = &var[ENV_PREFIX.len()..];
    let (section, key) = path
        .split_once("__")
        .map(|(s, k)| (s.to_ascii_lowercase(), k.to_ascii_lowercase()))
        .ok_or_else(|| ConfigError::UnknownKey {
            key: path.to_ascii_lowercase(),
            origin: format!("environment variable {var}"),
        })?;
    let dotted = format!("{section}.{key}");
    let origin = format!("environment variable {var}");
    let default = defaults
        .get(&section)
        .and_then(|s| s.as_table())
        .and_then(|s| s.get(&key))
        .ok_or_else(|| ConfigError::UnknownKey {
            key: dotted.clone(),
            origin: origin.clone(),
        })?;
    let invalid = |problem: String| ConfigError::Invalid {
        key: dotted.clone(),
        origin: origin.clone(),
        problem,
    };
    let value = match default {
        toml::Value::String(_) => toml::Value::String(raw.to_owned()),
        toml::Value::Integer(_) => raw
            .trim()
            .parse::<i64>()
            .map(toml::Value::Integer)
            .map_err(|_| invalid(format!("{raw:?} is not a whole number")))?,
        toml::Value::Boolean(_) => match raw.trim() {
            "true" | "1" => toml::Value::Boolean(true),
            "false" | "0" => toml::Value::Boolean(false),
            _ => return Err(invalid(format!("{raw:?} is not true or false"))),
        },
        toml::Value::Array(_) => {
            let trimmed = raw.trim();
            if trimmed.starts_with('[') {
                let doc = format!("v = {trimmed}");
                let t: toml::Table = doc
                    .parse()
                    .map_err(|_| invalid(format!("{raw:?} is not a TOML array")))?;
                t.get("v").cloned().unwrap_or(toml::Value::Array(vec![]))
            } else {
                toml::Value::Array(
                    trimmed
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| toml::Value::String(s.to_owned()))
                        .collect(),
                )
            }
        }
        other => {
            return Err(invalid(format!(
                "a {} value cannot be set from the environment",
                other.type_str()
            )));
        }
    };
    if let Some(toml::Value::Table(target)) = merged.get_mut(&section) {
        target.insert(key, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_load_and_validate() {
        let c = Config::load_with_env(FileLayer::None, env(&[])).unwrap();
        // the warning about the demo's bot name knows the name config.toml ships
        assert_eq!(c.telegram.bot_username, DEMO_BOT_USERNAME);
        assert_eq!(c.http.addr.to_string(), "127.0.0.1:8080");
        assert_eq!(c.payments.window, Duration::from_secs(900));
        assert_eq!(c.payments.amount_step.micros(), 1_000);
        assert_eq!(c.payments.max_slots, 999);
        assert_eq!(c.tron.confirmations, Confirmations::Solidified);
        assert!(c.is_sqlite());
        assert_eq!(c.sqlite_path(), PathBuf::from("data/telebot.db"));
    }

    #[test]
    fn environment_overrides_with_the_type_of_the_default() {
        let c = Config::load_with_env(
            FileLayer::None,
            env(&[
                ("TELEBOT__HTTP__ADDR", "0.0.0.0:9000"),
                ("TELEBOT__PAYMENTS__MAX_SLOTS", "50"),
                ("TELEBOT__METRICS__ENABLED", "false"),
                ("TELEBOT__TRON__CONFIRMATIONS", "20"),
                ("TELEBOT__DATABASE__URL", "postgres://u:pw@db/telebot"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.http.addr.port(), 9000);
        assert_eq!(c.payments.max_slots, 50);
        assert!(!c.metrics.enabled);
        assert_eq!(c.tron.confirmations, Confirmations::Blocks(20));
        assert!(!c.is_sqlite());
    }

    #[test]
    fn wallets_come_from_a_comma_list_or_toml_array() {
        for value in [
            "TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh, TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM",
            r#"["TJmmqjb1DK9TTZbQXzRQ2AuA94z4gKAPFh","TUoHaVjx7n5xz8LwPRDckgFrDWhMhuSuJM"]"#,
        ] {
            let c = Config::load_with_env(
                FileLayer::None,
                env(&[
                    ("TELEBOT__TRON__SOURCE", "trongrid"),
                    ("TELEBOT__PAYMENTS__WALLETS", value),
                ]),
            )
            .unwrap();
            assert_eq!(c.payments.wallets.len(), 2);
        }
    }

    #[test]
    fn invalid_values_name_the_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (
                &[("TELEBOT__PAYMENTS__MAX_SLOTS", "many")],
                "payments.max_slots",
            ),
            (
                &[("TELEBOT__PAYMENTS__AMOUNT_STEP", "0.0000001")],
                "payments.amount_step",
            ),
            (
                &[("TELEBOT__PAYMENTS__AMOUNT_STEP", "2")],
                "payments.amount_step",
            ),
            (
                &[("TELEBOT__PAYMENTS__UNMATCHED_ALERT_MIN", "-1")],
                "payments.unmatched_alert_min",
            ),
            (
                &[("TELEBOT__PAYMENTS__UNMATCHED_ALERT_MIN", "a lot")],
                "payments.unmatched_alert_min",
            ),
            (
                &[("TELEBOT__PAYMENTS__WINDOW", "15 minutes")],
                "payments.window",
            ),
            (&[("TELEBOT__HTTP__ADDR", "localhost")], "http.addr"),
            (&[("TELEBOT__LOG__LEVEL", "loud")], "log.level"),
            (
                &[("TELEBOT__HTTP__MAX_CONNECTIONS", "0")],
                "http.max_connections",
            ),
            (
                &[("TELEBOT__HTTP__HEADER_READ_TIMEOUT", "0s")],
                "http.header_read_timeout",
            ),
            (
                &[("TELEBOT__HTTP__IDLE_TIMEOUT", "10ms")],
                "http.idle_timeout",
            ),
            (
                &[("TELEBOT__SECURITY__CLIENT_ADDRESS_HEADER", "x forwarded")],
                "security.client_address_header",
            ),
            (
                &[("TELEBOT__LOG__LEVEL", "info,telebot=noisy")],
                "log.level",
            ),
            (&[("TELEBOT__LOG__LEVEL", " ")], "log.level"),
            (&[("TELEBOT__DATABASE__URL", "mysql://x")], "database.url"),
            (&[("TELEBOT__TRON__SOURCE", "ethereum")], "tron.source"),
            (&[("TELEBOT__TRON__SOURCE", "trongrid")], "payments.wallets"),
            (&[("TELEBOT__TELEGRAM__TOKEN", "123:abc")], "tron.source"),
            (
                &[("TELEBOT__TRON__CONFIRMATIONS", "soon")],
                "tron.confirmations",
            ),
            (
                &[(
                    "TELEBOT__PAYMENTS__CALLBACK_URL",
                    "https://shop.example/hook",
                )],
                "payments.callback_secret",
            ),
            (
                &[
                    ("TELEBOT__PAYMENTS__CALLBACK_URL", "shop.example/hook"),
                    ("TELEBOT__PAYMENTS__CALLBACK_SECRET", "s"),
                ],
                "payments.callback_url",
            ),
            (&[("TELEBOT__NOPE__KEY", "1")], "nope.key"),
            (&[("TELEBOT__HTTP__ADR", "1")], "http.adr"),
            (
                &[
                    ("TELEBOT__TRON__SOURCE", "trongrid"),
                    (
                        "TELEBOT__PAYMENTS__WALLETS",
                        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u",
                    ),
                ],
                "payments.wallets",
            ),
        ];
        for (vars, key) in cases {
            let err = Config::load_with_env(FileLayer::None, env(vars)).unwrap_err();
            assert!(
                err.to_string().contains(&format!("`{key}")),
                "{vars:?}: {err} does not name {key}"
            );
        }
    }

    #[test]
    fn an_invalid_url_is_refused_without_repeating_its_credentials() {
        for (var, value) in [
            ("TELEBOT__TRON__TRONGRID_URL", "ftp://user:SECRET@host/x"),
            ("TELEBOT__TELEGRAM__API_URL", "user:SECRET@host"),
            ("TELEBOT__PAYMENTS__CALLBACK_URL", "https//SECRET@shop"),
            ("TELEBOT__TRON__FULLNODE_URL", "file:///SECRET"),
        ] {
            let err = Config::load_with_env(
                FileLayer::None,
                env(&[(var, value), ("TELEBOT__PAYMENTS__CALLBACK_SECRET", "s")]),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains("URL"), "{value}: {err}");
            assert!(!err.contains("SECRET"), "{value}: {err}");
        }
    }

    #[test]
    fn log_levels_and_directives_are_accepted_a_bare_word_is_not() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,telebot::payments=debug",
            "telebot=trace",
            "info,sqlx=warn",
        ] {
            assert!(is_log_filter(ok), "{ok}");
        }
        for bad in [
            "loud",
            "",
            " , ",
            "info,loud",
            "telebot=",
            "=info",
            "telebot=loud",
        ] {
            assert!(!is_log_filter(bad), "{bad:?}");
        }
    }

    #[test]
    fn file_layer_refuses_unknown_keys_and_overrides_known_ones() {
        let c = Config::from_toml_str("[payments]\nmax_slots = 7\n").unwrap();
        assert_eq!(c.payments.max_slots, 7);
        let err = Config::from_toml_str("[payments]\nmax_slot = 7\n").unwrap_err();
        assert!(err.to_string().contains("payments.max_slot"), "{err}");
        let err = Config::from_toml_str("[payments\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { .. }), "{err}");
    }

    #[test]
    fn secrets_never_show_in_debug() {
        let c = Config::load_with_env(
            FileLayer::None,
            env(&[
                ("TELEBOT__SECURITY__WEBHOOK_SECRET", "hunter2-very-secret"),
                ("TELEBOT__DATABASE__URL", "postgres://user:pa55word@db/x"),
            ]),
        )
        .unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(!debug.contains("pa55word"), "{debug}");
        let summary = c.summary().join("\n");
        assert!(!summary.contains("pa55word"), "{summary}");
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "15", "m", "1x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
