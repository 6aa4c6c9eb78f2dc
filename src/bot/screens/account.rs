//! The customer's account: profile, balance and top-ups, language, and the agent programme.

use super::{BotError, Target, say, show};
use crate::bot::callback::Action;
use crate::bot::keyboards::{back, button, markup};
use crate::bot::texts::{t, tf};
use crate::bot::{BotEnv, Session};
use crate::config::Language;
use crate::domain::{AgentStatus, utc_minutes};

/// The amounts offered as top-up buttons (USDT).
const TOPUP_CHOICES: [i64; 4] = [10, 20, 50, 100];

pub(super) async fn profile(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    let user = env.store.user(s.user_id).await?;
    let count = env.store.count_orders_of_user(s.user_id).await?;
    let username = user
        .username
        .as_deref()
        .map(|u| format!("@{u}"))
        .unwrap_or_else(|| t(lang, "profile.no_username").to_owned());
    let text = tf(
        lang,
        "profile.text",
        &[
            ("telegram_id", &user.telegram_id),
            ("username", &username),
            ("date", &utc_minutes(user.created_at)),
            ("balance", &user.balance),
            ("orders", &count),
        ],
    );
    show(env, s, target, &text, back(lang, Action::Menu)).await
}

pub(super) async fn balance(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    let user = env.store.user(s.user_id).await?;
    let mut text = tf(lang, "balance.text", &[("balance", &user.balance)]);
    let history = env.store.ledger(s.user_id, 5).await?;
    if !history.is_empty() {
        text.push_str("\n\n");
        text.push_str(t(lang, "balance.history"));
        for e in history {
            let sign = if e.delta.is_negative() { "" } else { "+" };
            text.push('\n');
            text.push_str(&tf(
                lang,
                "balance.entry",
                &[
                    ("delta", &format!("{sign}{}", e.delta)),
                    ("reason", &t(lang, &format!("reason.{}", e.reason))),
                    ("date", &utc_minutes(e.created_at)),
                ],
            ));
        }
    }
    let kb = markup(vec![
        vec![button(t(lang, "btn.topup"), Action::Topup)],
        vec![button(t(lang, "btn.main"), Action::Menu)],
    ]);
    show(env, s, target, &text, kb).await
}

pub(super) async fn topup(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    let amounts: Vec<_> = TOPUP_CHOICES
        .iter()
        .map(|&u| button(format!("{u} USDT"), Action::TopupAmount(u * 1_000_000)))
        .collect();
    let kb = markup(vec![
        amounts,
        vec![button(t(lang, "btn.custom_amount"), Action::TopupCustom)],
        vec![
            button(t(lang, "btn.back"), Action::Balance),
            button(t(lang, "btn.main"), Action::Menu),
        ],
    ]);
    show(env, s, target, t(lang, "balance.choose"), kb).await
}

pub(super) async fn language(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let kb = markup(vec![
        vec![
            button("English", Action::SetLanguage(Language::En)),
            button("中文", Action::SetLanguage(Language::Zh)),
        ],
        vec![button(t(s.lang, "btn.main"), Action::Menu)],
    ]);
    show(env, s, target, t(s.lang, "language.choose"), kb).await
}

/// `/agent`: the agent's link and earnings, or the offer to apply.
pub(super) async fn agent(env: &BotEnv, s: &Session, target: Target) -> Result<(), BotError> {
    let lang = s.lang;
    match env.store.agent_by_user(s.user_id).await? {
        Some(a) if a.status == AgentStatus::Pending => say(env, s, t(lang, "agent.already")).await,
        Some(a) if a.status == AgentStatus::Rejected => {
            say(env, s, t(lang, "agent.rejected")).await
        }
        Some(a) => {
            let st = env.store.agent_stats(a.id).await?;
            let link = crate::domain::agent::referral_link(&env.bot_username, &a.code);
            let bps = format!("{}.{:02}", a.commission_bps / 100, a.commission_bps % 100);
            let text = tf(
                lang,
                "agent.info",
                &[
                    ("status", &a.status.as_str()),
                    ("link", &link),
                    ("referred", &st.referred_users),
                    ("orders", &st.paid_orders),
                    ("sales", &st.sales),
                    ("bps", &bps),
                    ("pending", &st.pending),
                    (
                        "available",
                        &st.available
                            .checked_add(st.requested)
                            .unwrap_or(st.available),
                    ),
                    ("paid", &st.paid),
                ],
            );
            let mut text = text;
            let stars = &st.stars;
            if stars.sales > 0 || stars.pending + stars.available + stars.requested + stars.paid > 0
            {
                text.push('\n');
                text.push_str(&tf(
                    lang,
                    "agent.info_stars",
                    &[
                        ("sales", &stars.sales),
                        ("pending", &stars.pending),
                        ("available", &(stars.available + stars.requested)),
                        ("paid", &stars.paid),
                    ],
                ));
            }
            show(env, s, target, &text, back(lang, Action::Menu)).await
        }
        _ => {
            let kb = markup(vec![
                vec![button(t(lang, "agent.apply"), Action::AgentApply)],
                vec![button(t(lang, "btn.main"), Action::Menu)],
            ]);
            show(env, s, target, t(lang, "agent.offer"), kb).await
        }
    }
}

pub(super) async fn apply_as_agent(env: &BotEnv, s: &Session) -> Result<String, BotError> {
    let lang = s.lang;
    match env.store.agent_by_user(s.user_id).await? {
        Some(a) if a.status == AgentStatus::Rejected => {
            return Ok(t(lang, "agent.rejected").to_owned());
        }
        Some(_) => return Ok(t(lang, "agent.already").to_owned()),
        None => {}
    }
    env.store
        .create_agent(
            &crate::store::NewAgent {
                user_id: Some(s.user_id),
                name: s.first_name.clone(),
                code: crate::domain::agent::new_code(),
                commission_bps: 0,
                status: AgentStatus::Pending,
            },
            &format!("user:{}", s.user_id),
        )
        .await?;
    Ok(t(lang, "agent.applied").to_owned())
}
