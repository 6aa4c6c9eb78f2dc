//! `/categories`, `/products` and stock upload.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{ApiJson, ApiQuery, Listing, PageParams, check_text, path_id};
use crate::domain::stars::check_stars_price;
use crate::domain::{Money, ProductKind, Role};
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::store::{Category, NewCategory, Product, ProductFilter, ProductInput, StoreError};

const READERS: &[Role] = &[Role::Admin, Role::Operator, Role::Service, Role::Agent];
const EDITORS: &[Role] = &[Role::Admin, Role::Operator];
/// Highest price a product may have.
const MAX_PRICE: Money = Money::from_micros(1_000_000 * 1_000_000);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoryBody {
    /// Lowercase letters, digits and dashes.
    pub slug: String,
    pub name_en: String,
    pub name_zh: String,
    #[serde(default)]
    pub position: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductBody {
    pub category_id: Option<i64>,
    pub kind: ProductKind,
    pub name_en: String,
    pub name_zh: String,
    #[serde(default)]
    pub description_en: String,
    #[serde(default)]
    pub description_zh: String,
    /// Decimal string with up to 6 decimals.
    #[schema(value_type = String, example = "10.5")]
    pub price: Money,
    /// Price in whole Telegram Stars, 1 to 100000; required on digital goods and services
    /// when the shop's `stars.require_price` is on, refused on top-ups.
    #[serde(default)]
    pub stars_price: Option<i64>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub position: i64,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockBody {
    /// Deliverable items (keys, accounts, links), one per entry.
    pub items: Vec<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StockAdded {
    pub added: u64,
    pub available: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductQuery {
    /// Only products of this category id.
    pub category: Option<i64>,
    /// Include hidden products (operators and admins only).
    pub include_hidden: Option<bool>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl ProductBody {
    fn validate(self, require_stars: bool) -> Result<ProductInput, ApiError> {
        check_stars_price(self.kind, self.stars_price, require_stars)
            .map_err(|e| ApiError::invalid("stars_price", e.to_string()))?;
        check_text("name_en", &self.name_en, 1, 128)?;
        check_text("name_zh", &self.name_zh, 0, 128)?;
        check_text("description_en", &self.description_en, 0, 2000)?;
        check_text("description_zh", &self.description_zh, 0, 2000)?;
        if self.price > MAX_PRICE {
            return Err(ApiError::invalid("price", "at most 1000000 USDT"));
        }
        if self.kind != ProductKind::Topup && !self.price.is_positive() {
            return Err(ApiError::invalid("price", "must be greater than zero"));
        }
        if !(-1_000_000..=1_000_000).contains(&self.position) {
            return Err(ApiError::invalid(
                "position",
                "between -1000000 and 1000000",
            ));
        }
        Ok(ProductInput {
            category_id: self.category_id,
            kind: self.kind,
            name_en: self.name_en,
            name_zh: self.name_zh,
            description_en: self.description_en,
            description_zh: self.description_zh,
            price: self.price,
            stars_price: self.stars_price,
            hidden: self.hidden,
            position: self.position,
        })
    }
}

/// A missing category shows up as a foreign-key refusal: name the field.
fn category_error(e: StoreError) -> ApiError {
    match &e {
        StoreError::Database(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => {
            ApiError::invalid("category_id", "no such category")
        }
        _ => e.into(),
    }
}

#[utoipa::path(get, path = "/categories", tag = "catalog",
    responses((status = 200, body = Vec<Category>), (status = 401)))]
pub async fn list_categories(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<Category>>, ApiError> {
    caller.require(READERS)?;
    let include_hidden = EDITORS.contains(&caller.role);
    Ok(Json(app.store.list_categories(include_hidden).await?))
}

#[utoipa::path(post, path = "/categories", tag = "catalog", request_body = CategoryBody,
    responses((status = 201, body = Category), (status = 401), (status = 403), (status = 409), (status = 422)))]
pub async fn create_category(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CategoryBody>,
) -> Result<(StatusCode, Json<Category>), ApiError> {
    caller.require(EDITORS)?;
    if body.slug.is_empty()
        || body.slug.len() > 48
        || !body
            .slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(ApiError::invalid(
            "slug",
            "1 to 48 lowercase letters, digits or dashes",
        ));
    }
    check_text("name_en", &body.name_en, 1, 64)?;
    check_text("name_zh", &body.name_zh, 0, 64)?;
    let c = app
        .store
        .create_category(
            &NewCategory {
                slug: body.slug,
                name_en: body.name_en,
                name_zh: body.name_zh,
                position: body.position.clamp(-1_000_000, 1_000_000),
            },
            &caller.audit_name(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(c)))
}

#[utoipa::path(get, path = "/products", tag = "catalog", params(ProductQuery),
    responses((status = 200, body = Listing<Product>), (status = 401), (status = 422)))]
pub async fn list_products(
    State(app): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ProductQuery>,
) -> Result<axum::response::Response, ApiError> {
    caller.require(READERS)?;
    let page = PageParams {
        limit: q.limit,
        offset: q.offset,
    }
    .page()?;
    let include_hidden = q.include_hidden.unwrap_or(false);
    if include_hidden && !EDITORS.contains(&caller.role) {
        return Err(ApiError::forbidden("only operators see hidden products"));
    }
    let filter = ProductFilter {
        category_id: q.category,
        include_hidden,
    };
    let items = app.store.product_page(&filter, page).await?;
    app.product_pages.json(&filter, page, items)
}

/// The JSON of product listings as last encoded, by filter and page, beside the listing it was
/// made from: while the catalog cache hands out that same listing, its JSON is sent again as
/// it is (encoding 50 products was most of what a listing request cost).
#[derive(Default)]
pub struct ProductPages {
    pages: dashmap::DashMap<PageKey, (Arc<Vec<Product>>, Bytes)>,
}

/// Hidden products included, category, limit, offset.
type PageKey = (bool, Option<i64>, i64, i64);

/// Pages kept at most; beyond it the cache starts over (the catalog cache has the same bound).
const PRODUCT_PAGES: usize = 512;

impl ProductPages {
    fn json(
        &self,
        filter: &ProductFilter,
        page: crate::store::Page,
        items: Arc<Vec<Product>>,
    ) -> Result<axum::response::Response, ApiError> {
        let key = (
            filter.include_hidden,
            filter.category_id,
            page.limit,
            page.offset,
        );
        // the map's guard is dropped before the map is written below
        let kept = self
            .pages
            .get(&key)
            .filter(|hit| Arc::ptr_eq(&hit.0, &items))
            .map(|hit| hit.1.clone());
        let body = match kept {
            Some(body) => body,
            None => {
                let listing = Listing::new(items.iter().collect::<Vec<&Product>>(), page);
                let body = Bytes::from(serde_json::to_vec(&listing).map_err(|e| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        format!("the listing could not be encoded: {e}"),
                    )
                })?);
                if self.pages.len() >= PRODUCT_PAGES {
                    self.pages.clear();
                }
                self.pages.insert(key, (items, body.clone()));
                body
            }
        };
        Ok((
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response())
    }
}

#[utoipa::path(get, path = "/products/{id}", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 200, body = Product), (status = 401), (status = 404)))]
pub async fn get_product(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Product>, ApiError> {
    caller.require(READERS)?;
    let p = app.store.product(path_id(&id, "id")?).await?;
    if p.hidden && !EDITORS.contains(&caller.role) {
        return Err(ApiError::not_found("product"));
    }
    Ok(Json(p))
}

#[utoipa::path(post, path = "/products", tag = "catalog", request_body = ProductBody,
    responses((status = 201, body = Product), (status = 401), (status = 403), (status = 422)))]
pub async fn create_product(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<(StatusCode, Json<Product>), ApiError> {
    caller.require(EDITORS)?;
    let input = body.validate(app.config.stars.require_price)?;
    let p = app
        .store
        .create_product(&input, &caller.audit_name())
        .await
        .map_err(category_error)?;
    Ok((StatusCode::CREATED, Json(p)))
}

#[utoipa::path(put, path = "/products/{id}", tag = "catalog", params(("id" = i64, Path)), request_body = ProductBody,
    responses((status = 200, body = Product), (status = 401), (status = 403), (status = 404), (status = 422)))]
pub async fn update_product(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProductBody>,
) -> Result<Json<Product>, ApiError> {
    caller.require(EDITORS)?;
    let id = path_id(&id, "id")?;
    let input = body.validate(app.config.stars.require_price)?;
    let after = app
        .store
        .update_product(id, &input, &caller.audit_name())
        .await
        .map_err(category_error)?;
    Ok(Json(after))
}

#[utoipa::path(delete, path = "/products/{id}", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 204), (status = 401), (status = 403), (status = 404)))]
pub async fn delete_product(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require(EDITORS)?;
    let id = path_id(&id, "id")?;
    app.store.delete_product(id, &caller.audit_name()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many stock items of a product are left to sell.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StockLeft {
    pub product_id: i64,
    pub available: i64,
}

#[utoipa::path(get, path = "/products/{id}/stock", tag = "catalog", params(("id" = i64, Path)),
    responses((status = 200, body = StockLeft), (status = 401), (status = 403), (status = 404)))]
pub async fn stock_left(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<StockLeft>, ApiError> {
    caller.require(EDITORS)?;
    let id = path_id(&id, "id")?;
    // an unknown product is a 404, not "0 left"
    app.store.product(id).await?;
    let available = app.store.stock_available(id).await?;
    Ok(Json(StockLeft {
        product_id: id,
        available,
    }))
}

#[utoipa::path(post, path = "/products/{id}/stock", tag = "catalog", params(("id" = i64, Path)), request_body = StockBody,
    responses((status = 200, body = StockAdded), (status = 401), (status = 403), (status = 404), (status = 409), (status = 422)))]
pub async fn add_stock(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<StockBody>,
) -> Result<Json<StockAdded>, ApiError> {
    caller.require(EDITORS)?;
    let id = path_id(&id, "id")?;
    if body.items.is_empty() || body.items.len() > 1_000 {
        return Err(ApiError::invalid("items", "1 to 1000 items per upload"));
    }
    for (i, item) in body.items.iter().enumerate() {
        check_text(&format!("items[{i}]"), item, 1, 2000)?;
    }
    let (added, available) = app
        .store
        .add_stock(id, &body.items, &caller.audit_name())
        .await?;
    Ok(Json(StockAdded { added, available }))
}
