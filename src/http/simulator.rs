//! Routes of the Telegram simulator (demo mode only): the Bot API subset under
//! `/sim/bot<token>/<method>`, and the user side under `/sim/api/` for the dashboard's chat
//! window and for tests.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::bot::simulator::{ApiFailure, SimUser, Simulator};

/// How long a button press waits for the bot's answer to it.
const CALLBACK_ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// The simulator's routes, with the simulator as their state (usable beside any other router).
pub fn router<S: Clone + Send + Sync + 'static>(sim: Arc<Simulator>) -> Router<S> {
    Router::new()
        .route("/sim/{bot_token}/{method}", post(bot_api).get(bot_api))
        .route("/sim/api/users", get(users))
        .route("/sim/api/users/{id}/messages", post(user_message))
        .route("/sim/api/users/{id}/callbacks", post(user_callback))
        .route("/sim/api/users/{id}/payments", post(user_payment))
        .route("/sim/api/refunds", post(refund_elsewhere))
        .route("/sim/api/users/{id}/chat", get(chat))
        .route("/sim/api/raw", post(raw_update))
        .route("/sim/api/files/{file_id}", get(file))
        .route("/sim/api/callbacks/{query_id}", get(callback_answer))
        .with_state(sim)
}

type Sim = State<Arc<Simulator>>;

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

fn fail(f: ApiFailure) -> Response {
    let status = StatusCode::from_u16(f.code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"ok": false, "error_code": f.code, "description": f.description})),
    )
        .into_response()
}

/// Bot API parameters from a JSON body, a form, a multipart form (with files) or the query.
struct Params {
    values: Value,
    file: Option<Vec<u8>>,
}

async fn read_params(request: Request) -> Result<Params, ApiFailure> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let query = decode_form(request.uri().query().unwrap_or(""));
    if content_type.starts_with("multipart/form-data") {
        let mut multipart =
            Multipart::from_request(request, &())
                .await
                .map_err(|e| ApiFailure {
                    code: 400,
                    description: format!("Bad Request: {e}"),
                })?;
        let mut values = serde_json::Map::new();
        let mut file = None;
        while let Ok(Some(field)) = multipart.next_field().await {
            let name = field.name().unwrap_or("").to_owned();
            let is_file = field.file_name().is_some();
            let bytes = field.bytes().await.map_err(|e| ApiFailure {
                code: 400,
                description: format!("Bad Request: {e}"),
            })?;
            if is_file {
                file = Some(bytes.to_vec());
            } else {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                // structured fields (reply_markup) arrive as JSON text
                let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
                values.insert(name, value);
            }
        }
        return Ok(Params {
            values: Value::Object(values),
            file,
        });
    }
    let body = Bytes::from_request(request, &())
        .await
        .map_err(|e| ApiFailure {
            code: 400,
            description: format!("Bad Request: {e}"),
        })?;
    if body.is_empty() {
        return Ok(Params {
            values: query,
            file: None,
        });
    }
    let values = if content_type.starts_with("application/x-www-form-urlencoded") {
        decode_form(&String::from_utf8_lossy(&body))
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiFailure::bad(format!("can't parse JSON: {e}")))?
    };
    Ok(Params { values, file: None })
}

/// `a=1&b=x%20y` as a JSON object of strings (percent-decoded).
fn decode_form(text: &str) -> Value {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(text).unwrap_or_default();
    Value::Object(
        pairs
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

impl ApiFailure {
    fn bad(d: String) -> Self {
        ApiFailure {
            code: 400,
            description: format!("Bad Request: {d}"),
        }
    }
}

fn int(v: &Value, key: &str) -> Result<i64, ApiFailure> {
    match &v[key] {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| ApiFailure::bad(format!("{key} is required")))
}

fn opt_str(v: &Value, key: &str) -> Option<String> {
    v[key].as_str().map(str::to_owned)
}

fn markup(v: &Value) -> Option<Value> {
    match &v["reply_markup"] {
        Value::Null => None,
        Value::String(s) => serde_json::from_str(s).ok(),
        other => Some(other.clone()),
    }
}

/// Bot API methods that only read: the only ones answered on GET.
const READ_ONLY_METHODS: [&str; 2] = ["getme", "getwebhookinfo"];

/// The bot side of the simulator changes chats, so a web page an operator happens to open must
/// not be able to call it: a link or image (GET) or a cross-site form (a browser request, which
/// carries `Origin` or `Sec-Fetch-Site`) is refused for every method that changes state. The bot
/// itself (teloxide) calls with POST and sends neither header.
fn refuse_from_browser_or_get(name: &str, method: &str, request: &Request) -> Option<ApiFailure> {
    if READ_ONLY_METHODS.contains(&name) {
        return None;
    }
    if request.method() != axum::http::Method::POST {
        return Some(ApiFailure {
            code: 405,
            description: format!("Method Not Allowed: {method} changes state; call it with POST"),
        });
    }
    let headers = request.headers();
    let from_browser = headers.contains_key(axum::http::header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes() != b"none");
    from_browser.then(|| ApiFailure {
        code: 403,
        description: format!(
            "Forbidden: {method} is the bot's side of the simulator and is not called from a web page"
        ),
    })
}

async fn bot_api(
    State(sim): Sim,
    Path((bot_token, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if !bot_token.starts_with("bot") {
        return fail(ApiFailure {
            code: 404,
            description: "Not Found".into(),
        });
    }
    let name = method.to_ascii_lowercase();
    if let Some(refusal) = refuse_from_browser_or_get(&name, &method, &request) {
        return fail(refusal);
    }
    let params = match read_params(request).await {
        Ok(p) => p,
        Err(f) => return fail(f),
    };
    let v = &params.values;
    let result = match name.as_str() {
        "getme" => Ok(sim.get_me()),
        "getwebhookinfo" => Ok(sim.webhook_info()),
        "deletewebhook" | "close" | "logout" => Ok(json!(true)),
        "getupdates" => {
            let offset = int(v, "offset").ok();
            let limit = int(v, "limit").unwrap_or(100).clamp(1, 100) as usize;
            let timeout = Duration::from_secs(int(v, "timeout").unwrap_or(0).clamp(0, 50) as u64);
            Ok(sim.get_updates(offset, limit, timeout).await)
        }
        "sendmessage" => match (int(v, "chat_id"), opt_str(v, "text")) {
            (Ok(chat), Some(text)) => sim.send_message(chat, &text, markup(v)),
            _ => Err(ApiFailure::bad("chat_id and text are required".into())),
        },
        "sendphoto" => match (int(v, "chat_id"), params.file.clone()) {
            (Ok(chat), Some(bytes)) => {
                sim.send_photo(chat, bytes, opt_str(v, "caption"), markup(v))
            }
            _ => Err(ApiFailure::bad(
                "chat_id and a photo file are required".into(),
            )),
        },
        "editmessagetext" => match (int(v, "chat_id"), int(v, "message_id"), opt_str(v, "text")) {
            (Ok(chat), Ok(id), Some(text)) => sim.edit_message(chat, id, Some(&text), markup(v)),
            _ => Err(ApiFailure::bad(
                "chat_id, message_id and text are required".into(),
            )),
        },
        "editmessagereplymarkup" => match (int(v, "chat_id"), int(v, "message_id")) {
            (Ok(chat), Ok(id)) => sim.edit_message(chat, id, None, markup(v)),
            _ => Err(ApiFailure::bad(
                "chat_id and message_id are required".into(),
            )),
        },
        "deletemessage" => match (int(v, "chat_id"), int(v, "message_id")) {
            (Ok(chat), Ok(id)) => Ok(json!(sim.delete_message(chat, id))),
            _ => Err(ApiFailure::bad(
                "chat_id and message_id are required".into(),
            )),
        },
        "answercallbackquery" => match opt_str(v, "callback_query_id") {
            Some(id) => {
                sim.answer_callback(
                    &id,
                    opt_str(v, "text"),
                    v["show_alert"].as_bool().unwrap_or(false),
                );
                Ok(json!(true))
            }
            None => Err(ApiFailure::bad("callback_query_id is required".into())),
        },
        "setmycommands" => {
            let lang = opt_str(v, "language_code").unwrap_or_default();
            let commands = match &v["commands"] {
                Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                other => other.clone(),
            };
            sim.set_commands(&lang, commands);
            Ok(json!(true))
        }
        "sendinvoice" => match int(v, "chat_id") {
            Ok(chat) => sim.send_invoice(chat, v),
            Err(e) => Err(e),
        },
        "answerprecheckoutquery" => match opt_str(v, "pre_checkout_query_id") {
            Some(id) => {
                let ok = matches!(&v["ok"], Value::Bool(true)) || v["ok"].as_str() == Some("true");
                sim.answer_pre_checkout(&id, ok, opt_str(v, "error_message"))
                    .map(|()| json!(true))
            }
            None => Err(ApiFailure::bad(
                "parameter \"pre_checkout_query_id\" is required".into(),
            )),
        },
        "refundstarpayment" => {
            let user = int(v, "user_id").unwrap_or(0);
            let charge = opt_str(v, "telegram_payment_charge_id").unwrap_or_default();
            sim.refund_star_payment(user, &charge).map(|()| json!(true))
        }
        "getstartransactions" => Ok(sim.star_transactions(
            int(v, "offset").unwrap_or(0),
            int(v, "limit").unwrap_or(100),
        )),
        "setwebhook" => Err(ApiFailure::bad(
            "webhooks are not available in the simulator".into(),
        )),
        _ => Err(ApiFailure {
            code: 404,
            description: "Not Found: method not found".into(),
        }),
    };
    match result {
        Ok(r) => ok(r),
        Err(f) => fail(f),
    }
}

/// The simulated user behind a request (profile fields optional after the first message).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserMessage {
    pub text: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub language_code: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserCallback {
    pub message_id: i64,
    pub data: String,
}

fn sim_user(
    sim: &Simulator,
    id: i64,
    first_name: Option<String>,
    username: Option<String>,
    language_code: Option<String>,
) -> SimUser {
    let known = sim.users().into_iter().find(|u| u.id == id);
    SimUser {
        id,
        first_name: first_name
            .or_else(|| known.as_ref().map(|u| u.first_name.clone()))
            .unwrap_or_else(|| format!("Customer {id}")),
        username: username.or_else(|| known.as_ref().and_then(|u| u.username.clone())),
        language_code: language_code.or_else(|| known.and_then(|u| u.language_code)),
    }
}

fn user_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0 && *id < 1 << 52)
        .ok_or_else(|| ApiError::invalid("id", "a simulated user id is a positive whole number"))
}

async fn user_message(
    State(sim): Sim,
    Path(id): Path<String>,
    Json(body): Json<UserMessage>,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(&id)?;
    if body.text.is_empty() || body.text.chars().count() > 4096 {
        return Err(ApiError::invalid("text", "between 1 and 4096 characters"));
    }
    let user = sim_user(&sim, id, body.first_name, body.username, body.language_code);
    let (update_id, message_id) = sim.user_message(&user, &body.text);
    Ok(Json(
        json!({"update_id": update_id, "message_id": message_id}),
    ))
}

async fn user_callback(
    State(sim): Sim,
    Path(id): Path<String>,
    Json(body): Json<UserCallback>,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(&id)?;
    let user = sim_user(&sim, id, None, None, None);
    let (update_id, query_id) = sim
        .user_callback(&user, body.message_id, &body.data)
        .map_err(|f| ApiError::bad_request("bad_callback", f.description))?;
    // the bot answers a button press at once (Telegram shows the answer over the chat); wait a
    // moment for it so the chat window can show it the same way
    let answer = sim
        .wait_callback_answer(&query_id, CALLBACK_ANSWER_WAIT)
        .await
        .unwrap_or(Value::Null);
    Ok(Json(
        json!({"update_id": update_id, "callback_query_id": query_id, "answer": answer}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPayment {
    /// The invoice message to pay.
    pub message_id: i64,
}

/// The simulated user pays a Stars invoice (simulated Stars: nothing real is charged).
async fn user_payment(
    State(sim): Sim,
    Path(id): Path<String>,
    Json(body): Json<UserPayment>,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(&id)?;
    let user = sim_user(&sim, id, None, None, None);
    let outcome = sim
        .pay_invoice(&user, body.message_id)
        .await
        .map_err(|f| ApiError::bad_request("bad_invoice", f.description))?;
    Ok(Json(outcome))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundElsewhere {
    pub charge_id: String,
}

/// Telegram refunds a payment on its own (a support decision): the bot gets `refunded_payment`.
async fn refund_elsewhere(
    State(sim): Sim,
    Json(body): Json<RefundElsewhere>,
) -> Result<Json<Value>, ApiError> {
    sim.refund_elsewhere(&body.charge_id)
        .map_err(|f| ApiError::bad_request("bad_refund", f.description))?;
    Ok(Json(json!({"refunded": body.charge_id})))
}

#[derive(Debug, Deserialize)]
pub struct ChatQuery {
    #[serde(default)]
    pub since: u64,
    /// Wait up to this long for something new (long polling for the chat window).
    #[serde(default)]
    pub wait_ms: u64,
}

async fn chat(
    State(sim): Sim,
    Path(id): Path<String>,
    Query(q): Query<ChatQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = user_id(&id)?;
    if q.wait_ms > 0 {
        sim.wait_change(q.since, Duration::from_millis(q.wait_ms.min(25_000)))
            .await;
    }
    // the bot's name and its command menu (as setMyCommands left them), for the chat's header
    // and its "/" menu
    Ok(Json(json!({
        "version": sim.version(),
        "messages": sim.chat(id, q.since),
        "bot_username": sim.bot_username(),
        "commands": {"default": sim.commands(""), "zh": sim.commands("zh")},
    })))
}

async fn users(State(sim): Sim) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(sim.users())))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpdate {
    pub kind: String,
    pub body: Value,
}

async fn raw_update(State(sim): Sim, Json(raw): Json<RawUpdate>) -> Result<Json<Value>, ApiError> {
    if raw.kind.is_empty()
        || raw.kind.len() > 40
        || !raw
            .kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(ApiError::invalid(
            "kind",
            "an update kind such as message or channel_post",
        ));
    }
    Ok(Json(
        json!({"update_id": sim.raw_update(&raw.kind, raw.body)}),
    ))
}

async fn file(State(sim): Sim, Path(file_id): Path<String>) -> Result<Response, ApiError> {
    let bytes = sim
        .file(&file_id)
        .ok_or_else(|| ApiError::not_found("file"))?;
    Ok(([(header::CONTENT_TYPE, "image/png")], bytes).into_response())
}

async fn callback_answer(
    State(sim): Sim,
    Path(query_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let answer = sim
        .callback_answer(&query_id)
        .ok_or_else(|| ApiError::not_found("callback answer"))?;
    Ok(Json(answer))
}
