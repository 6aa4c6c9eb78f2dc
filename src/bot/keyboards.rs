//! Inline keyboards of the screens.

use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use super::callback::Action;
use super::texts::t;
use crate::config::Language;

pub fn button(text: impl Into<String>, action: Action) -> InlineKeyboardButton {
    InlineKeyboardButton::callback(text.into(), action.encode())
}

pub fn markup(rows: Vec<Vec<InlineKeyboardButton>>) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(rows)
}

pub fn main_menu(lang: Language) -> InlineKeyboardMarkup {
    markup(vec![
        vec![
            button(t(lang, "btn.catalog"), Action::Catalog { page: 0 }),
            button(t(lang, "btn.orders"), Action::Orders { page: 0 }),
        ],
        vec![
            button(t(lang, "btn.profile"), Action::Profile),
            button(t(lang, "btn.balance"), Action::Balance),
        ],
        vec![
            button(t(lang, "btn.language"), Action::Language),
            button(t(lang, "btn.help"), Action::Help),
        ],
    ])
}

/// A single "back" row.
pub fn back(lang: Language, to: Action) -> InlineKeyboardMarkup {
    markup(vec![vec![
        button(t(lang, "btn.back"), to),
        button(t(lang, "btn.main"), Action::Menu),
    ]])
}

/// Previous / next buttons for page `page` of `pages`, built by `at`.
pub fn pager(
    lang: Language,
    page: u32,
    pages: u32,
    at: impl Fn(u32) -> Action,
) -> Option<Vec<InlineKeyboardButton>> {
    if pages <= 1 {
        return None;
    }
    let mut row = Vec::new();
    if page > 0 {
        row.push(button(t(lang, "btn.prev"), at(page - 1)));
    }
    if page + 1 < pages {
        row.push(button(t(lang, "btn.next"), at(page + 1)));
    }
    Some(row)
}
