//! The catalog: categories, products (service, digital with stock items, top-up) and stock.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::audit::AuditRecord;
use super::tx::Tx;
use super::{DuplicateStock, Page, Store, StoreError, StoreResult, in_tx, on_pool};
use crate::domain::{Money, ProductKind, now_ms};

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Category {
    pub id: i64,
    pub slug: String,
    pub name_en: String,
    pub name_zh: String,
    pub position: i64,
    pub hidden: bool,
    pub created_at: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewCategory {
    pub slug: String,
    pub name_en: String,
    pub name_zh: String,
    #[serde(default)]
    pub position: i64,
}

#[derive(Debug, Clone, FromRow, Serialize, utoipa::ToSchema)]
pub struct Product {
    pub id: i64,
    pub category_id: Option<i64>,
    #[sqlx(try_from = "String")]
    pub kind: ProductKind,
    pub name_en: String,
    pub name_zh: String,
    pub description_en: String,
    pub description_zh: String,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = String)]
    pub price: Money,
    /// Price in whole Telegram Stars, when the product is sold for Stars too.
    pub stars_price: Option<i64>,
    pub hidden: bool,
    pub position: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Product {
    pub fn name(&self, language: &str) -> &str {
        if language == "zh" && !self.name_zh.is_empty() {
            &self.name_zh
        } else {
            &self.name_en
        }
    }
    pub fn description(&self, language: &str) -> &str {
        if language == "zh" && !self.description_zh.is_empty() {
            &self.description_zh
        } else {
            &self.description_en
        }
    }
}

/// Fields of a product as created or replaced by an operator.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductInput {
    pub category_id: Option<i64>,
    pub kind: ProductKind,
    pub name_en: String,
    pub name_zh: String,
    #[serde(default)]
    pub description_en: String,
    #[serde(default)]
    pub description_zh: String,
    pub price: Money,
    /// Price in whole Telegram Stars (none: not sold for Stars).
    #[serde(default)]
    pub stars_price: Option<i64>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub position: i64,
}

/// Filters for listing products.
#[derive(Debug, Clone, Default)]
pub struct ProductFilter {
    pub category_id: Option<i64>,
    /// Operators see hidden products; customers do not.
    pub include_hidden: bool,
}

/// Product listings kept in memory: the catalog is read on every browse of the bot and every
/// `GET /products`, and written rarely. Every product write in this process bumps the version,
/// which drops what was cached before; entries also expire after [`CATALOG_TTL`], which bounds
/// how long another instance's change takes to show here.
#[derive(Debug, Default)]
pub(crate) struct CatalogCache {
    version: std::sync::atomic::AtomicU64,
    lists: dashmap::DashMap<(bool, Option<i64>, i64, i64), CachedList>,
    counts: dashmap::DashMap<(bool, Option<i64>), (u64, std::time::Instant, i64)>,
}

type CachedList = (u64, std::time::Instant, std::sync::Arc<Vec<Product>>);

/// How long a cached listing is served without asking the database.
pub const CATALOG_TTL: std::time::Duration = std::time::Duration::from_secs(2);
/// Listings kept at most (distinct filters and pages); beyond it the cache starts over.
const CATALOG_ENTRIES: usize = 512;

impl CatalogCache {
    fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Acquire)
    }

    fn fresh(&self, version: u64, at: std::time::Instant) -> bool {
        version == self.version() && at.elapsed() < CATALOG_TTL
    }

    /// Called after a product write has committed.
    fn invalidate(&self) {
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.lists.clear();
        self.counts.clear();
    }
}

macro_rules! product_columns {
    () => {
        "id, category_id, kind, name_en, name_zh, description_en, description_zh, price, stars_price, \
         hidden, position, created_at, updated_at"
    };
}

impl Store {
    /// Creates a category; `actor` is recorded in the audit log in the same transaction.
    pub async fn create_category(&self, c: &NewCategory, who: &str) -> StoreResult<Category> {
        let conflict = |e: sqlx::Error| {
            let e = StoreError::from(e);
            if e.is_unique_violation() {
                StoreError::Conflict(format!("a category with slug {:?} exists", c.slug))
            } else {
                e
            }
        };
        Ok(in_tx!(self, tx => {
            let created: Category = sqlx::query_as(
                "insert into categories (slug, name_en, name_zh, position, created_at) \
                 values ($1, $2, $3, $4, $5) \
                 returning id, slug, name_en, name_zh, position, hidden, created_at",
            )
            .bind(&c.slug)
            .bind(&c.name_en)
            .bind(&c.name_zh)
            .bind(c.position)
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(conflict)?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "category.created", "category", created.id).after(&created)).await?;
            created
        }))
    }

    pub async fn list_categories(&self, include_hidden: bool) -> StoreResult<Vec<Category>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "select id, slug, name_en, name_zh, position, hidden, created_at from categories \
                 where ($1 or not hidden) order by position, id",
            )
            .bind(include_hidden)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Creates a product; `actor` is recorded in the audit log in the same transaction.
    pub async fn create_product(&self, p: &ProductInput, who: &str) -> StoreResult<Product> {
        let now = now_ms();
        let created = in_tx!(self, tx => {
            let created: Product = sqlx::query_as(concat!(
                "insert into products (category_id, kind, name_en, name_zh, description_en, \
                 description_zh, price, hidden, position, created_at, updated_at, stars_price) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11) returning ",
                product_columns!()
            ))
            .bind(p.category_id)
            .bind(p.kind.as_str())
            .bind(&p.name_en)
            .bind(&p.name_zh)
            .bind(&p.description_en)
            .bind(&p.description_zh)
            .bind(p.price.micros())
            .bind(p.hidden)
            .bind(p.position)
            .bind(now)
            .bind(p.stars_price)
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "product.created", "product", created.id).after(&created)).await?;
            created
        });
        self.catalog.invalidate();
        Ok(created)
    }

    /// Replaces a product's fields and records the change (before and after) for `actor` in
    /// the audit log, in one transaction; returns the product as it is now.
    pub async fn update_product(
        &self,
        id: i64,
        p: &ProductInput,
        who: &str,
    ) -> StoreResult<Product> {
        let updated = in_tx!(self, tx => {
            let before: Product = sqlx::query_as(concat!(
                "select ", product_columns!(), " from products where id = $1 and not deleted"
            ))
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("product"))?;
            let after: Product = sqlx::query_as(concat!(
                "update products set category_id = $2, kind = $3, name_en = $4, name_zh = $5, \
                 description_en = $6, description_zh = $7, price = $8, hidden = $9, position = $10, \
                 updated_at = $11, stars_price = $12 where id = $1 returning ",
                product_columns!()
            ))
            .bind(id)
            .bind(p.category_id)
            .bind(p.kind.as_str())
            .bind(&p.name_en)
            .bind(&p.name_zh)
            .bind(&p.description_en)
            .bind(&p.description_zh)
            .bind(p.price.micros())
            .bind(p.hidden)
            .bind(p.position)
            .bind(now_ms())
            .bind(p.stars_price)
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "product.updated", "product", id).before(&before).after(&after)).await?;
            after
        });
        self.catalog.invalidate();
        Ok(updated)
    }

    /// Removes a product from sale, recorded for `actor` in the audit log in the same
    /// transaction. Orders keep pointing at it, so the row stays, marked deleted.
    pub async fn delete_product(&self, id: i64, who: &str) -> StoreResult<Product> {
        let deleted = in_tx!(self, tx => {
            let deleted: Product = sqlx::query_as(concat!(
                "update products set deleted = true, hidden = true, updated_at = $2 \
                 where id = $1 and not deleted returning ",
                product_columns!()
            ))
            .bind(id)
            .bind(now_ms())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("product"))?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "product.deleted", "product", id).before(&deleted)).await?;
            deleted
        });
        self.catalog.invalidate();
        Ok(deleted)
    }

    pub async fn product(&self, id: i64) -> StoreResult<Product> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ", product_columns!(), " from products where id = $1 and not deleted"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await?
        })
        .ok_or(StoreError::NotFound("product"))
    }

    /// A product even if it was deleted (names of past orders).
    pub async fn product_any(&self, id: i64) -> StoreResult<Product> {
        on_pool!(self, pool => {
            sqlx::query_as(concat!("select ", product_columns!(), " from products where id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        })
        .ok_or(StoreError::NotFound("product"))
    }

    /// Products on sale (and hidden ones with `include_hidden`), in catalog order; served from
    /// the `CatalogCache` when it has them.
    pub async fn list_products(&self, f: &ProductFilter, page: Page) -> StoreResult<Vec<Product>> {
        Ok(self.product_page(f, page).await?.as_ref().clone())
    }

    /// The same listing, shared: while the cache holds it, every caller gets the very same
    /// `Arc` (so a caller may keep what it made from it, e.g. its JSON, until the `Arc` changes).
    pub async fn product_page(
        &self,
        f: &ProductFilter,
        page: Page,
    ) -> StoreResult<std::sync::Arc<Vec<Product>>> {
        let key = (f.include_hidden, f.category_id, page.limit, page.offset);
        if let Some(hit) = self.catalog.lists.get(&key)
            && self.catalog.fresh(hit.0, hit.1)
        {
            return Ok(hit.2.clone());
        }
        // the version is read before the query: a write committed meanwhile leaves the entry stale
        let version = self.catalog.version();
        let products: Vec<Product> = on_pool!(self, pool => {
            sqlx::query_as(concat!(
                "select ",
                product_columns!(),
                " from products where not deleted and ($1 or not hidden) \
                 and ($2 is null or category_id = $2) order by position, id limit $3 offset $4"
            ))
            .bind(f.include_hidden)
            .bind(f.category_id)
            .bind(page.limit)
            .bind(page.offset)
            .fetch_all(pool)
            .await?
        });
        if self.catalog.lists.len() >= CATALOG_ENTRIES {
            self.catalog.lists.clear();
        }
        let products = std::sync::Arc::new(products);
        self.catalog
            .lists
            .insert(key, (version, std::time::Instant::now(), products.clone()));
        Ok(products)
    }

    pub async fn count_products(&self, f: &ProductFilter) -> StoreResult<i64> {
        let key = (f.include_hidden, f.category_id);
        if let Some(hit) = self.catalog.counts.get(&key)
            && self.catalog.fresh(hit.0, hit.1)
        {
            return Ok(hit.2);
        }
        let version = self.catalog.version();
        let count: i64 = on_pool!(self, pool => {
            sqlx::query_scalar(
                "select count(*) from products where not deleted and ($1 or not hidden) \
                 and ($2 is null or category_id = $2)",
            )
            .bind(f.include_hidden)
            .bind(f.category_id)
            .fetch_one(pool)
            .await?
        });
        if self.catalog.counts.len() >= CATALOG_ENTRIES {
            self.catalog.counts.clear();
        }
        self.catalog
            .counts
            .insert(key, (version, std::time::Instant::now(), count));
        Ok(count)
    }

    /// Adds deliverable items to a digital product, recorded for `actor` in the audit log in
    /// the same transaction; returns how many were added and how many are now available.
    pub async fn add_stock(
        &self,
        product_id: i64,
        items: &[String],
        who: &str,
    ) -> StoreResult<(u64, i64)> {
        let product = self.product(product_id).await?;
        if product.kind != ProductKind::Digital {
            return Err(StoreError::Conflict(
                "stock can only be added to digital products".to_owned(),
            ));
        }
        // the same line twice in one upload is refused before anything is written
        let mut first_seen: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        let mut repeated = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match first_seen.entry(item.trim()) {
                std::collections::hash_map::Entry::Occupied(e) => repeated.push((i, *e.get())),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(i);
                }
            }
        }
        let now = now_ms();
        let outcome: Result<(u64, i64), DuplicateStock> = in_tx!(self, tx => {
            // a write first, so concurrent uploads to one product take turns and cannot both
            // add the same line
            sqlx::query("update products set id = id where id = $1")
                .bind(product_id)
                .execute(&mut *tx)
                .await?;
            let unsold: Vec<String> = sqlx::query_scalar(
                "select content from stock_items where product_id = $1 and order_id is null",
            )
            .bind(product_id)
            .fetch_all(&mut *tx)
            .await?;
            let unsold: HashSet<&str> = unsold.iter().map(|c| c.trim()).collect();
            let in_stock: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, item)| unsold.contains(item.trim()))
                .map(|(i, _)| i)
                .collect();
            if !repeated.is_empty() || !in_stock.is_empty() {
                Err(DuplicateStock { repeated, in_stock })
            } else {
            let mut added = 0;
            for item in items {
                added += sqlx::query(
                    "insert into stock_items (product_id, content, created_at) values ($1, $2, $3)",
                )
                .bind(product_id)
                .bind(item)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            }
            let available: i64 = sqlx::query_scalar(
                "select count(*) from stock_items where product_id = $1 and order_id is null",
            )
            .bind(product_id)
            .fetch_one(&mut *tx)
            .await?;
            Tx::from(&mut *tx).append_audit(&AuditRecord::new(who, "stock.added", "product", product_id)
                .after(&serde_json::json!({"added": added, "available": available}))).await?;
            Ok((added, available))
            }
        });
        outcome.map_err(StoreError::DuplicateStock)
    }

    /// What the order rules need to know of `product`: its kind, price, visibility and, for
    /// digital goods, the unsold stock read now.
    pub async fn offer(&self, product: &Product) -> StoreResult<crate::domain::ProductOffer> {
        let stock = match product.kind {
            ProductKind::Digital => Some(self.stock_available(product.id).await?),
            _ => None,
        };
        Ok(crate::domain::ProductOffer {
            kind: product.kind,
            price: product.price,
            hidden: product.hidden,
            stock,
        })
    }

    /// Items of a digital product not yet delivered.
    pub async fn stock_available(&self, product_id: i64) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar(
                "select count(*) from stock_items where product_id = $1 and order_id is null",
            )
            .bind(product_id)
            .fetch_one(pool)
            .await?
        }))
    }
}
