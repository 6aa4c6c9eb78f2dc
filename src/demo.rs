//! The demo that `cargo run --release` starts with no configuration: a sample catalog in English
//! and Chinese, and a dashboard login printed in the start-up log. Only in demo mode (the
//! simulated Telegram and the demo chain), which the configuration refuses beside a real token or
//! real wallets.

use crate::domain::{Money, ProductKind, Role};
use crate::store::{
    AuditFilter, NewCategory, Page, ProductFilter, ProductInput, Store, StoreError,
};

/// Fills an empty catalog with sample categories, products and stock. Returns whether it did.
pub async fn seed_catalog(store: &Store) -> Result<bool, StoreError> {
    let any = ProductFilter {
        category_id: None,
        include_hidden: true,
    };
    if store.count_products(&any).await? > 0 || !store.list_categories(true).await?.is_empty() {
        return Ok(false);
    }
    let keys = store
        .create_category(
            &NewCategory {
                slug: "digital-keys".into(),
                name_en: "Digital keys".into(),
                name_zh: "数字密钥".into(),
                position: 1,
            },
            "system",
        )
        .await?;
    let services = store
        .create_category(
            &NewCategory {
                slug: "services".into(),
                name_en: "Services".into(),
                name_zh: "服务".into(),
                position: 2,
            },
            "system",
        )
        .await?;
    let product = |category: i64,
                   kind,
                   en: &str,
                   zh: &str,
                   den: &str,
                   dzh: &str,
                   price: &str,
                   stars: Option<i64>| ProductInput {
        category_id: Some(category),
        kind,
        name_en: en.into(),
        name_zh: zh.into(),
        description_en: den.into(),
        description_zh: dzh.into(),
        price: Money::parse(price).unwrap_or(Money::ZERO),
        stars_price: stars,
        hidden: false,
        position: 0,
    };
    let vpn = store
        .create_product(
            &product(
                keys.id,
                ProductKind::Digital,
                "VPN access, 1 year",
                "VPN 一年访问",
                "A licence key delivered in this chat right after payment.",
                "付款后立即在本聊天中发送许可证密钥。",
                "12.5",
                Some(650),
            ),
            "system",
        )
        .await?;
    let gift = store
        .create_product(
            &product(
                keys.id,
                ProductKind::Digital,
                "Game gift card, 10 USD",
                "游戏礼品卡 10 美元",
                "A redeemable code for the game store.",
                "可在游戏商店兑换的代码。",
                "10",
                Some(500),
            ),
            "system",
        )
        .await?;
    store
        .create_product(
            &product(
                services.id,
                ProductKind::Service,
                "Logo design",
                "标志设计",
                "Describe your brand; a designer sends three drafts within two days.",
                "描述您的品牌；设计师两天内发送三份草稿。",
                "30",
                Some(1500),
            ),
            "system",
        )
        .await?;
    store
        .create_product(
            &product(
                services.id,
                ProductKind::Topup,
                "Balance top-up",
                "余额充值",
                "Add USDT to your balance and pay orders from it.",
                "向余额充值 USDT，并用余额支付订单。",
                "0",
                None,
            ),
            "system",
        )
        .await?;
    let vpn_stock: Vec<String> = (1..=20)
        .map(|i| format!("VPN-DEMO-{i:04}-{:06X}", rand::random::<u32>() & 0xFFFFFF))
        .collect();
    let gift_stock: Vec<String> = (1..=20)
        .map(|i| format!("GIFT-DEMO-{i:04}-{:06X}", rand::random::<u32>() & 0xFFFFFF))
        .collect();
    store.add_stock(vpn.id, &vpn_stock, "system").await?;
    store.add_stock(gift.id, &gift_stock, "system").await?;
    Ok(true)
}

/// The demo's `admin` login: a fresh password at every start (returned to be shown), unless
/// an operator has set the account's password since (`None`: theirs stays).
pub async fn demo_admin(store: &Store) -> Result<Option<String>, String> {
    if let Some(admin) = store
        .dashboard_user(DEMO_ADMIN)
        .await
        .map_err(|e| e.to_string())?
    {
        let last_set = store
            .list_audit(
                &AuditFilter {
                    entity: Some("dashboard_user".to_owned()),
                    entity_id: Some(admin.id.to_string()),
                    action: Some("account.set".to_owned()),
                    ..AuditFilter::default()
                },
                Page::new(1, 0),
            )
            .await
            .map_err(|e| e.to_string())?;
        if last_set.first().is_some_and(|e| e.actor != DEMO_WHO) {
            return Ok(None);
        }
    }
    let password: String = bs58::encode(rand::random::<[u8; 12]>()).into_string();
    crate::accounts::set_account(store, DEMO_ADMIN, &password, Some(Role::Admin), DEMO_WHO)
        .await
        .map_err(|e| e.to_string())?;
    Ok(Some(password))
}

/// The demo's dashboard account, and who its automatic password changes are recorded as.
const DEMO_ADMIN: &str = "admin";
const DEMO_WHO: &str = "demo";
