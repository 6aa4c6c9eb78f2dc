//! The bot's texts in English and Chinese, from `locales/*.toml` (compiled in). Handlers name a
//! key; no user-facing string lives in code. Every value filled into a text is HTML-escaped here,
//! so a product name or a customer's request can never inject markup.

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::OnceLock;

use crate::config::Language;

const EN: &str = include_str!("../../locales/en.toml");
const ZH: &str = include_str!("../../locales/zh.toml");

struct Catalogs {
    en: HashMap<String, String>,
    zh: HashMap<String, String>,
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut HashMap<String, String>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            toml::Value::Table(t) => flatten(&key, t, out),
            // the locale files hold only strings and tables
            _ => {}
        }
    }
}

fn parse(text: &str) -> HashMap<String, String> {
    let table: toml::Table = text.parse().unwrap_or_default();
    let mut out = HashMap::new();
    flatten("", &table, &mut out);
    out
}

fn catalogs() -> &'static Catalogs {
    static C: OnceLock<Catalogs> = OnceLock::new();
    C.get_or_init(|| Catalogs {
        en: parse(EN),
        zh: parse(ZH),
    })
}

/// Every key of a language (for the completeness test).
pub fn keys(lang: Language) -> Vec<String> {
    let c = catalogs();
    let map = match lang {
        Language::En => &c.en,
        Language::Zh => &c.zh,
    };
    let mut v: Vec<String> = map.keys().cloned().collect();
    v.sort();
    v
}

/// The text of `key`; English when a translation is missing; `…` (and an error in the log) if
/// both are.
pub fn t(lang: Language, key: &str) -> &'static str {
    let c = catalogs();
    let primary = match lang {
        Language::En => &c.en,
        Language::Zh => &c.zh,
    };
    primary
        .get(key)
        .or_else(|| c.en.get(key))
        .map(String::as_str)
        .unwrap_or_else(|| {
            tracing::error!(key, "missing text");
            "…"
        })
}

/// A value for a `{name}` placeholder.
pub type Arg<'a> = (&'a str, &'a (dyn Display + Sync));

/// How long is left until a deadline, as a customer reads it: minutes when there are ten or
/// more, minutes and seconds below that, seconds under a minute; never rounded up to a minute
/// that is not there.
pub fn time_left(lang: Language, ms: i64) -> String {
    let secs = ms.max(0) / 1000;
    let (m, s) = (secs / 60, secs % 60);
    if m >= 10 || (m > 0 && s == 0) {
        tf(lang, "time.minutes", &[("m", &m)])
    } else if m > 0 {
        tf(lang, "time.min_sec", &[("m", &m), ("s", &s)])
    } else {
        tf(lang, "time.seconds", &[("s", &s)])
    }
}

/// The text of `key` with `{name}` placeholders filled in, every value HTML-escaped.
pub fn tf(lang: Language, key: &str, args: &[Arg<'_>]) -> String {
    fill(t(lang, key), args)
}

fn fill(template: &str, args: &[Arg<'_>]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let name = &after[..end];
                match args.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(&escape(&v.to_string())),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for Telegram's HTML parse mode.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// Checks text written by an operator (a broadcast) against what Telegram's HTML parse mode
/// accepts, so that a typo is refused when the text is submitted instead of making every send
/// fail: only Telegram's tags, each closed in order, `<` only as the start of a tag, and `&`
/// only as the start of an entity (`&lt;`, `&gt;`, `&amp;`, `&quot;`, `&#NN;`, `&#xHH;`).
pub fn check_telegram_html(text: &str) -> Result<(), String> {
    const TAGS: [&str; 15] = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
    ];
    let mut open: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['<', '&']) {
        let tail = &rest[at..];
        if tail.starts_with('&') {
            let end = tail
                .find(';')
                .filter(|e| *e <= 10)
                .ok_or_else(|| "a bare & must be written &amp;".to_owned())?;
            let name = &tail[1..end];
            let numeric = name
                .strip_prefix("#x")
                .map(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()))
                .or_else(|| {
                    name.strip_prefix('#')
                        .map(|d| !d.is_empty() && d.chars().all(|c| c.is_ascii_digit()))
                })
                .unwrap_or(false);
            if !numeric && !matches!(name, "lt" | "gt" | "amp" | "quot") {
                return Err(format!("unknown entity &{name}; (write & as &amp;)"));
            }
            rest = &tail[end + 1..];
            continue;
        }
        let end = tail
            .find('>')
            .ok_or_else(|| "a bare < must be written &lt;".to_owned())?;
        let inner = &tail[1..end];
        let closing = inner.starts_with('/');
        let name = inner
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace())
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        if !TAGS.contains(&name.as_str()) {
            return Err(format!(
                "<{inner}> is not a tag Telegram accepts (b, i, u, s, a, code, pre, \
                 blockquote, tg-spoiler, ...); a bare < must be written &lt;"
            ));
        }
        if closing {
            match open.pop() {
                Some(last) if last == name => {}
                Some(last) => return Err(format!("</{name}> closes <{last}>")),
                None => return Err(format!("</{name}> closes nothing")),
            }
        } else {
            open.push(name);
        }
        rest = &tail[end + 1..];
    }
    match open.pop() {
        Some(tag) => Err(format!("<{tag}> is never closed")),
        None => Ok(()),
    }
}

/// Cleans text a user typed: control characters (other than new lines and tabs) removed, ends
/// trimmed. Everything else (emoji, right-to-left scripts) is kept as written.
pub fn clean_input(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The user's language from Telegram's `language_code`, or the configured default.
pub fn language_for(code: Option<&str>, default: Language) -> Language {
    match code.map(|c| c.to_ascii_lowercase()) {
        Some(c) if c.starts_with("zh") => Language::Zh,
        Some(c) if c.starts_with("en") => Language::En,
        _ => default,
    }
}

pub fn parse_language(code: &str) -> Language {
    if code == "zh" {
        Language::Zh
    } else {
        Language::En
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_html_is_checked_like_telegram_would() {
        for good in [
            "Sale: <b>20% off</b> today",
            "<a href=\"https://shop.example\">shop</a> &amp; more &lt;3 &#128512; &#x1F600;",
            "<b>bold <i>and italic</i></b> -> arrows > fine",
            "<tg-spoiler>hidden</tg-spoiler><pre><code class=\"language-rust\">x</code></pre>",
            "plain text",
        ] {
            assert_eq!(check_telegram_html(good), Ok(()), "{good}");
        }
        for (bad, says) in [
            ("Tom & Jerry", "&amp;"),
            ("<b>never closed", "never closed"),
            ("<b><i>crossed</b></i>", "closes <i>"),
            ("</b>", "closes nothing"),
            ("1 < 2", "&lt;"),
            ("<script>x</script>", "not a tag"),
            ("&nbsp;", "unknown entity"),
        ] {
            let err = check_telegram_html(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn both_languages_have_every_key() {
        let en = keys(Language::En);
        let zh = keys(Language::Zh);
        assert!(en.len() > 80, "locales were read: {}", en.len());
        let missing_zh: Vec<_> = en.iter().filter(|k| !zh.contains(k)).collect();
        let missing_en: Vec<_> = zh.iter().filter(|k| !en.contains(k)).collect();
        assert!(missing_zh.is_empty(), "missing in zh: {missing_zh:?}");
        assert!(missing_en.is_empty(), "missing in en: {missing_en:?}");
    }

    #[test]
    fn time_left_is_never_rounded_up() {
        assert_eq!(time_left(Language::En, 15 * 60_000), "15 min");
        assert_eq!(time_left(Language::En, 14 * 60_000 + 59_999), "14 min");
        assert_eq!(time_left(Language::En, 3 * 60_000 + 5_000), "3 min 5 s");
        assert_eq!(time_left(Language::En, 2 * 60_000), "2 min");
        assert_eq!(time_left(Language::En, 1_999), "1 s");
        assert_eq!(time_left(Language::En, -5), "0 s");
        assert_eq!(time_left(Language::Zh, 90_000), "1 分 30 秒");
    }

    #[test]
    fn placeholders_are_filled_and_escaped() {
        let s = tf(
            Language::En,
            "orders.request",
            &[("request", &"<b>hi</b> & \"x\"")],
        );
        assert_eq!(s, "Your request: &lt;b&gt;hi&lt;/b&gt; &amp; &quot;x&quot;");
        assert_eq!(fill("{a}{b}{", &[("a", &1)]), "1{b}{");
    }

    #[test]
    fn every_placeholder_in_zh_exists_in_en() {
        for key in keys(Language::En) {
            let names = |s: &str| -> Vec<String> {
                s.split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                    .collect()
            };
            let mut en = names(t(Language::En, &key));
            let mut zh = names(t(Language::Zh, &key));
            en.sort();
            zh.sort();
            assert_eq!(en, zh, "placeholders differ for {key}");
        }
    }

    #[test]
    fn hostile_input_is_cleaned_not_refused() {
        assert_eq!(clean_input("  hi\u{0000}\u{0007} there \n"), "hi there");
        assert_eq!(clean_input("مرحبا 👋"), "مرحبا 👋");
        assert_eq!(language_for(Some("zh-hans"), Language::En), Language::Zh);
        assert_eq!(language_for(Some("de"), Language::En), Language::En);
        assert_eq!(language_for(None, Language::Zh), Language::Zh);
    }
}
