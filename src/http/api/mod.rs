//! REST API v1 under `/api/v1`: JSON in and out, bearer tokens with roles, one error shape
//! (`{"error": {"code", "message", "field"}}`), and an OpenAPI 3.1 document generated from the
//! same route definitions (`GET /api/v1/openapi.json`), so the two cannot drift apart.
//!
//! Permission matrix (a role may do what its column allows):
//!
//! | area                                   | admin | operator | service | agent                 |
//! |----------------------------------------|-------|----------|---------|-----------------------|
//! | catalog: read                          | yes   | yes      | yes     | yes                   |
//! | catalog: write, stock                  | yes   | yes      |         |                       |
//! | users: read                            | yes   | yes      | yes     | own referrals         |
//! | users: create / update                 | yes   | yes      | yes     |                       |
//! | orders: read                           | yes   | yes      | yes     | own referrals' orders |
//! | orders: create                         | yes   | yes      | yes     |                       |
//! | orders: change status, refund          | yes   | yes      |         |                       |
//! | payments: read                         | yes   | yes      | yes     | own referrals' orders |
//! | payments: unmatched list, assignment, Stars payments and refunds | yes | yes |  |                       |
//! | agents: create, change, decide payouts | yes   | yes      |         |                       |
//! | agents: read, commissions, payouts     | yes   | yes      |         | itself                |
//! | audit log                              | yes   | yes      |         |                       |
//! | broadcasts                             | yes   | yes      |         |                       |
//! | subsystems: read                       | yes   | yes      |         |                       |
//! | subsystems: restart, API tokens        | yes   |          |         |                       |

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::error::ApiError;
use crate::store::Page;

pub mod admin;
pub mod agents;
pub mod audit;
pub mod catalog;
pub mod orders;
pub mod payments;
pub mod stars;
pub mod tokens;
pub mod users;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "TeleBot API",
        description = "Catalog, orders, payments, agents and operations of a TeleBot shop. \
                       Every request needs `Authorization: Bearer <token>`; amounts are decimal strings.",
    ),
    servers((url = "/api/v1")),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API routes and their OpenAPI document, built from the same definitions.
pub fn router() -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::list, users::upsert))
        .routes(routes!(users::get))
        .routes(routes!(catalog::list_categories, catalog::create_category))
        .routes(routes!(catalog::list_products, catalog::create_product))
        .routes(routes!(
            catalog::get_product,
            catalog::update_product,
            catalog::delete_product
        ))
        .routes(routes!(catalog::add_stock, catalog::stock_left))
        .routes(routes!(orders::list, orders::create))
        .routes(routes!(orders::get, orders::update))
        .routes(routes!(stars::refund_order))
        .routes(routes!(stars::list_payments))
        .routes(routes!(stars::refund_payment))
        .routes(routes!(stars::list_support))
        .routes(routes!(stars::close_support))
        .routes(routes!(payments::payment_of_order))
        .routes(routes!(payments::list_transfers))
        .routes(routes!(payments::assign_transfer))
        .routes(routes!(agents::list, agents::create))
        .routes(routes!(agents::get, agents::update))
        .routes(routes!(agents::commissions))
        .routes(routes!(agents::payouts_of_agent, agents::request_payout))
        .routes(routes!(agents::list_payouts))
        .routes(routes!(agents::decide_payout))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(admin::subsystems))
        .routes(routes!(admin::restart))
        .routes(routes!(admin::list_broadcasts, admin::create_broadcast))
        .routes(routes!(admin::cancel_broadcast))
        .routes(routes!(admin::overview))
        .routes(routes!(admin::scanners))
        .routes(routes!(admin::bot))
        .routes(routes!(admin::demo_pay))
        .routes(routes!(admin::accounts, admin::create_account))
        .split_for_parts();
    doc.openapi = utoipa::openapi::OpenApiVersion::Version31;
    let doc_json = serde_json::to_value(&doc).unwrap_or_default();
    let router = router
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let doc = doc_json.clone();
                async move { axum::Json(doc) }
            }),
        )
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed);
    (router, doc)
}

/// A path under /api/v1 that names no endpoint, in the API's error shape.
async fn unknown_route(axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "no endpoint at {}; /api/v1/openapi.json lists them",
            uri.path()
        ),
    )
}

/// An endpoint asked with a method it does not answer, in the API's error shape.
async fn method_not_allowed(method: axum::http::Method) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("this endpoint does not answer {method}"),
    )
}

/// A JSON body; every way it can be wrong is a 400 (not JSON) or 422 (a field breaks a rule),
/// naming the field, in the API's error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    e.body_text(),
                )
            })?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// What a query parameter's parse failure means, for a person.
fn plain_parse_error(message: &str) -> String {
    if message.contains("invalid digit") || message.contains("cannot parse integer") {
        "must be a whole number".to_owned()
    } else if message.contains("number too large") || message.contains("number too small") {
        "is out of range".to_owned()
    } else if message.contains("float literal") {
        "must be a number".to_owned()
    } else if message.contains("provided string was not `true` or `false`") {
        "must be true or false".to_owned()
    } else {
        message.to_owned()
    }
}

/// A serde message without its " at line 1 column 94" tail.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i)
            if message[i + " at line ".len()..]
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            message[..i].to_owned()
        }
        _ => message.to_owned(),
    }
}

/// Parses a JSON document, naming the offending field on failure. Every body is an object.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first != Some(b'{') {
        return Err(ApiError::bad_request(
            "malformed",
            "the body must be a JSON object",
        ));
    }
    // broken JSON is a 400 even when a field before the break is also wrong
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::bad_request(
            "malformed",
            format!("the body is not valid JSON: {e}"),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Ok(v) => de.end().map(|()| v).map_err(|e| {
            ApiError::bad_request(
                "malformed",
                format!("trailing data after the JSON body: {e}"),
            )
        }),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                let field = if path == "." { None } else { Some(path) };
                // the field is named apart; where in the body it sat is noise to a person
                let mut err = ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_field",
                    without_position(&inner.to_string()),
                );
                err.field = field;
                Err(err)
            } else {
                Err(ApiError::bad_request(
                    "malformed",
                    format!("the body is not valid JSON: {inner}"),
                ))
            }
        }
    }
}

/// Query parameters with the API's error shape.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                // the parameter is named apart, and Rust's parse texts become words
                let field = e.path().to_string();
                let mut err = ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_query",
                    plain_parse_error(&e.into_inner().to_string()),
                );
                err.field = (field != ".").then_some(field);
                err
            })
    }
}

/// A positive id from a path segment.
pub fn path_id(raw: &str, field: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::invalid(field, "must be a positive whole number"))
}

/// `limit` (1 to 200, default 50) and `offset` (default 0) of a listing.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Items per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
    /// Items to skip (default 0).
    pub offset: Option<i64>,
}

impl PageParams {
    pub fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(50);
        if !(1..=Page::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::invalid(
                "limit",
                format!("between 1 and {}", Page::MAX_LIMIT),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        if !(0..=1_000_000_000).contains(&offset) {
            return Err(ApiError::invalid("offset", "a whole number from 0"));
        }
        Ok(Page::new(limit, offset))
    }
}

/// A page of a listing.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub limit: i64,
    pub offset: i64,
}

impl<T> Listing<T> {
    pub fn new(items: Vec<T>, page: Page) -> Self {
        Listing {
            items,
            limit: page.limit,
            offset: page.offset,
        }
    }
}

/// Text rules shared by the endpoints.
pub fn check_text(field: &str, value: &str, min: usize, max: usize) -> Result<(), ApiError> {
    crate::domain::text::check_text(value, min, max)
        .map_err(|e| ApiError::invalid(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_errors_lose_the_position_in_the_body() {
        assert_eq!(
            super::without_position("amount is empty at line 1 column 94"),
            "amount is empty"
        );
        assert_eq!(
            super::without_position("at line 7 of the poem"),
            "at line 7 of the poem"
        );
        let err = super::parse_json::<std::collections::HashMap<String, u8>>(br#"{"price": "x"}"#)
            .unwrap_err();
        assert!(!err.message.contains("column"), "{}", err.message);
        assert_eq!(err.field.as_deref(), Some("price"));
    }
}
