//! The catalog: categories, products, and the buy button that asks for what an order needs.

use super::account::topup;
use super::{BotError, PAGE_SIZE, Target, pages, say, show};
use crate::bot::callback::Action;
use crate::bot::keyboards::{back, button, markup, pager};
use crate::bot::texts::{t, tf};
use crate::bot::{Awaiting, BotEnv, MAX_REQUEST_CHARS, Session};
use crate::config::Language;
use crate::domain::ProductKind;
use crate::store::{Page, ProductFilter, StoreError};

pub(super) async fn catalog(
    env: &BotEnv,
    s: &Session,
    target: Target,
    page: u32,
) -> Result<(), BotError> {
    let lang = s.lang;
    let categories = env.store.list_categories(false).await?;
    let loose = env
        .store
        .list_products(
            &ProductFilter {
                category_id: None,
                include_hidden: false,
            },
            Page::new(Page::MAX_LIMIT, 0),
        )
        .await?
        .into_iter()
        .filter(|p| p.category_id.is_none())
        .collect::<Vec<_>>();
    let mut entries: Vec<_> = categories
        .iter()
        .map(|c| {
            let name = if lang == Language::Zh && !c.name_zh.is_empty() {
                &c.name_zh
            } else {
                &c.name_en
            };
            button(format!("📁 {name}"), Action::Category { id: c.id, page: 0 })
        })
        .collect();
    entries.extend(loose.iter().map(|p| {
        button(
            format!("{} · {} USDT", p.name(lang.code()), p.price),
            Action::Product(p.id),
        )
    }));
    if entries.is_empty() {
        return show(
            env,
            s,
            target,
            t(lang, "catalog.empty"),
            back(lang, Action::Menu),
        )
        .await;
    }
    let total = pages(entries.len());
    let page = page.min(total - 1);
    let mut rows: Vec<_> = entries
        .into_iter()
        .skip(page as usize * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|b| vec![b])
        .collect();
    rows.extend(pager(lang, page, total, |p| Action::Catalog { page: p }));
    rows.push(vec![button(t(lang, "btn.main"), Action::Menu)]);
    let mut text = t(lang, "catalog.title").to_owned();
    if total > 1 {
        text.push_str("\n\n");
        text.push_str(&tf(
            lang,
            "catalog.page",
            &[("page", &(page + 1)), ("pages", &total)],
        ));
    }
    show(env, s, target, &text, markup(rows)).await
}

pub(super) async fn category(
    env: &BotEnv,
    s: &Session,
    target: Target,
    id: i64,
    page: u32,
) -> Result<(), BotError> {
    let lang = s.lang;
    let Some(cat) = env
        .store
        .list_categories(false)
        .await?
        .into_iter()
        .find(|c| c.id == id)
    else {
        return catalog(env, s, target, 0).await;
    };
    let filter = ProductFilter {
        category_id: Some(id),
        include_hidden: false,
    };
    let total_items = env.store.count_products(&filter).await? as usize;
    let total = pages(total_items);
    let page = page.min(total - 1);
    let products = env
        .store
        .list_products(
            &filter,
            Page::new(PAGE_SIZE as i64, i64::from(page) * PAGE_SIZE as i64),
        )
        .await?;
    let mut rows: Vec<_> = products
        .iter()
        .map(|p| {
            vec![button(
                format!("{} · {} USDT", p.name(lang.code()), p.price),
                Action::Product(p.id),
            )]
        })
        .collect();
    rows.extend(pager(lang, page, total, |p| Action::Category {
        id,
        page: p,
    }));
    rows.push(vec![
        button(t(lang, "btn.back"), Action::Catalog { page: 0 }),
        button(t(lang, "btn.main"), Action::Menu),
    ]);
    let name = if lang == Language::Zh && !cat.name_zh.is_empty() {
        &cat.name_zh
    } else {
        &cat.name_en
    };
    let mut text = tf(lang, "catalog.category", &[("name", name)]);
    if products.is_empty() {
        text.push_str("\n\n");
        text.push_str(t(lang, "catalog.empty"));
    }
    show(env, s, target, &text, markup(rows)).await
}

pub(super) async fn product(
    env: &BotEnv,
    s: &Session,
    target: Target,
    id: i64,
) -> Result<(), BotError> {
    let lang = s.lang;
    let p = match env.store.product(id).await {
        Ok(p) if !p.hidden => p,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return show(
                env,
                s,
                target,
                t(lang, "product.gone"),
                back(lang, Action::Catalog { page: 0 }),
            )
            .await;
        }
        Err(e) => return Err(e.into()),
    };
    let mut text = tf(
        lang,
        "product.detail",
        &[
            ("name", &p.name(lang.code())),
            ("description", &p.description(lang.code())),
            ("price", &p.price),
        ],
    );
    let stars = sold_for_stars(env, &p);
    if let Some(n) = stars {
        text.push('\n');
        text.push_str(&tf(lang, "product.stars_price", &[("stars", &n)]));
    }
    let mut available = true;
    if p.kind == ProductKind::Digital {
        let stock = env.store.stock_available(p.id).await?;
        available = stock > 0;
        text.push('\n');
        if available {
            text.push_str(&tf(lang, "product.stock", &[("count", &stock)]));
        } else {
            text.push_str(t(lang, "product.out_of_stock"));
        }
    }
    let to = p
        .category_id
        .map(|c| Action::Category { id: c, page: 0 })
        .unwrap_or(Action::Catalog { page: 0 });
    let mut rows = Vec::new();
    if available && stars.is_some() {
        rows.push(vec![
            button(t(lang, "btn.buy_usdt"), Action::Buy(p.id)),
            button(t(lang, "btn.buy_stars"), Action::BuyStars(p.id)),
        ]);
    } else if available {
        rows.push(vec![button(t(lang, "btn.buy"), Action::Buy(p.id))]);
    }
    rows.push(vec![
        button(t(lang, "btn.back"), to),
        button(t(lang, "btn.main"), Action::Menu),
    ]);
    show(env, s, target, &text, markup(rows)).await
}

/// The product's price in Stars when this shop sells it for Stars (never a top-up).
pub(super) fn sold_for_stars(env: &BotEnv, p: &crate::store::Product) -> Option<i64> {
    p.stars_price
        .filter(|_| env.stars_enabled && p.kind != ProductKind::Topup)
}

/// The "buy" button (paid with Stars when `stars`): ask for a request text, a quantity, or an
/// amount, by product kind.
pub(super) async fn buy(
    env: &BotEnv,
    s: &mut Session,
    target: Target,
    id: i64,
    stars: bool,
) -> Result<Option<String>, BotError> {
    let lang = s.lang;
    let p = match env.store.product(id).await {
        Ok(p) if !p.hidden => p,
        Ok(_) | Err(StoreError::NotFound(_)) => {
            return Ok(Some(t(lang, "product.gone").to_owned()));
        }
        Err(e) => return Err(e.into()),
    };
    if stars && sold_for_stars(env, &p).is_none() {
        return Ok(Some(t(lang, "pay.stars_disabled").to_owned()));
    }
    match p.kind {
        ProductKind::Service => {
            s.saved.awaiting = Some(Awaiting::Request {
                product_id: p.id,
                stars,
            });
            let text = tf(
                lang,
                "order.ask_request",
                &[
                    ("product", &p.name(lang.code())),
                    ("max", &MAX_REQUEST_CHARS),
                ],
            );
            say(env, s, &text).await?;
            Ok(None)
        }
        ProductKind::Digital => {
            let stock = env.store.stock_available(p.id).await?;
            if stock == 0 {
                return Ok(Some(t(lang, "product.out_of_stock").to_owned()));
            }
            let choices: Vec<_> = [1u32, 2, 3, 5, 10]
                .into_iter()
                .filter(|q| i64::from(*q) <= stock)
                .map(|q| {
                    let action = if stars {
                        Action::StarsQuantity {
                            product: p.id,
                            qty: q,
                        }
                    } else {
                        Action::Quantity {
                            product: p.id,
                            qty: q,
                        }
                    };
                    button(q.to_string(), action)
                })
                .collect();
            let kb = markup(vec![
                choices,
                vec![button(t(lang, "btn.back"), Action::Product(p.id))],
            ]);
            let text = tf(
                lang,
                "order.ask_quantity",
                &[("product", &p.name(lang.code())), ("count", &stock)],
            );
            show(env, s, target, &text, kb).await?;
            Ok(None)
        }
        ProductKind::Topup => {
            topup(env, s, target).await?;
            Ok(None)
        }
    }
}
