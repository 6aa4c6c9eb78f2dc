//! The bot's commands: one enum, from which both the parsing of `/command` messages and the list
//! offered in Telegram's command menu come. The descriptions in the menu are the `cmd.*` texts
//! of each language.

use teloxide::utils::command::BotCommands;

use super::texts::t;
use crate::config::Language;

/// Every command the bot answers, in the order of Telegram's menu.
#[derive(BotCommands, Debug, Clone, Copy, PartialEq, Eq)]
#[command(rename_rule = "lowercase")]
pub enum Command {
    Start,
    Menu,
    Catalog,
    Orders,
    Profile,
    Balance,
    Language,
    Agent,
    Help,
    Terms,
    Privacy,
    /// Help with a payment; Telegram requires it of bots that sell for Stars.
    Paysupport,
    Cancel,
}

/// A command message taken apart: the command (`None` when the bot has no such command) and the
/// text after it. `None` when the text is not a command at all.
pub fn parse(text: &str) -> Option<(Option<Command>, &str)> {
    let command = text.strip_prefix('/')?;
    let (name, payload) = command
        .split_once(char::is_whitespace)
        .unwrap_or((command, ""));
    // `/start@shop_bot` in groups: the name is the part before the bot's username
    let name = name.split('@').next().unwrap_or(name).to_ascii_lowercase();
    Some((Command::parse(&format!("/{name}"), "").ok(), payload.trim()))
}

/// The commands offered in Telegram's menu, described in `lang`.
pub fn menu(lang: Language) -> Vec<teloxide::types::BotCommand> {
    Command::bot_commands()
        .into_iter()
        .map(|c| {
            let name = c.command.trim_start_matches('/').to_owned();
            let description = t(lang, &format!("cmd.{name}"));
            teloxide::types::BotCommand::new(name, description)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{Command, menu, parse};
    use crate::config::Language;

    #[test]
    fn commands_parse_with_payloads_case_and_bot_names() {
        assert_eq!(
            parse("/start ref_ab12"),
            Some((Some(Command::Start), "ref_ab12"))
        );
        assert_eq!(parse("/START@shop_bot"), Some((Some(Command::Start), "")));
        assert_eq!(
            parse("/orders  extra "),
            Some((Some(Command::Orders), "extra"))
        );
        assert_eq!(parse("/nonsense"), Some((None, "")));
        assert_eq!(parse("/"), Some((None, "")));
        assert_eq!(parse("hello"), None);
    }

    #[test]
    fn the_menu_lists_every_command_with_a_described_text() {
        for lang in [Language::En, Language::Zh] {
            let menu = menu(lang);
            let names: Vec<&str> = menu.iter().map(|c| c.command.as_str()).collect();
            assert_eq!(
                names,
                [
                    "start",
                    "menu",
                    "catalog",
                    "orders",
                    "profile",
                    "balance",
                    "language",
                    "agent",
                    "help",
                    "terms",
                    "privacy",
                    "paysupport",
                    "cancel"
                ]
            );
            for c in &menu {
                assert!(!c.description.is_empty() && c.description != "…", "{c:?}");
            }
        }
    }
}
