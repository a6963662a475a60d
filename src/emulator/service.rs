//! The HTTP face of the emulator: envelope, authentication, limits, faults,
//! and the endpoints' documented behaviour.

use super::Latency;
use super::state::{Group, Shared, World};
use crate::api::codes::{self, ErrorCode};
use crate::api::usersig;
use crate::api::wire::{AttrItem, GroupType, Operation, Response};
use crate::model::{AttributeSet, GroupId, limits};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

pub(super) fn router(shared: Arc<Shared>, stop: CancellationToken) -> Router {
    Router::new()
        .route("/emulator/stats", get(stats).delete(reset_stats))
        .route("/emulator/writes", get(writes))
        .fallback(handle)
        .with_state(App { shared, stop })
}

async fn stats(State(app): State<App>) -> impl IntoResponse {
    Json(app.shared.stats())
}

async fn writes(State(app): State<App>) -> impl IntoResponse {
    Json(app.shared.writes())
}

async fn reset_stats(State(app): State<App>) -> impl IntoResponse {
    app.shared.reset_stats();
    StatusCode::NO_CONTENT
}

/// An answer that is not an envelope: a fault.
enum Fault {
    BadGateway,
    Drop,
}

async fn handle(State(app): State<App>, uri: Uri, RawQuery(query): RawQuery, body: Bytes) -> axum::response::Response {
    let shared = &app.shared;
    let operation = Operation::ALL.iter().copied().find(|e| uri.path().trim_start_matches('/') == e.path());
    shared.record_call(operation);
    if let Some(latency) = pick_latency(shared.config.latency) {
        sleep_or_stop(&app.stop, latency).await;
    }
    if shared.config.fault_rate > 0.0 && rand::random::<f64>() < shared.config.fault_rate {
        match rand::random_range(0..4) {
            0 => {
                shared.record_fault(&codes::INTERNAL_ERROR.code.to_string());
                return envelope(shared, fail(&codes::INTERNAL_ERROR, "internal server error (injected)"));
            }
            1 => {
                shared.record_fault("502");
                return fault(Fault::BadGateway);
            }
            2 => {
                shared.record_fault("stall");
                sleep_or_stop(&app.stop, shared.config.stall).await;
            }
            _ => {
                shared.record_fault("drop");
                return fault(Fault::Drop);
            }
        }
    }
    let answer = answer(shared, operation, query.as_deref().unwrap_or_default(), &body);
    envelope(shared, answer)
}

fn pick_latency(latency: Latency) -> Option<Duration> {
    match latency {
        Latency::None => None,
        Latency::Fixed(d) => Some(d),
        Latency::Between(low, high) => {
            Some(Duration::from_micros(rand::random_range(low.as_micros() as u64..=high.as_micros() as u64)))
        }
    }
}

async fn sleep_or_stop(stop: &CancellationToken, duration: Duration) {
    tokio::select! {
        () = stop.cancelled() => {}
        () = tokio::time::sleep(duration) => {}
    }
}

fn envelope(shared: &Shared, response: Response) -> axum::response::Response {
    shared.record_answer(response.error_code);
    Json(response).into_response()
}

fn fault(fault: Fault) -> axum::response::Response {
    match fault {
        Fault::BadGateway => (StatusCode::BAD_GATEWAY, "502 Bad Gateway (injected)").into_response(),
        // Headers go out, then the body fails: the server aborts the connection mid-answer.
        Fault::Drop => {
            let broken = futures_util::stream::once(async {
                Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped (injected)"))
            });
            axum::response::Response::new(Body::from_stream(broken))
        }
    }
}

/// A failed answer with `entry`'s code.
fn fail(entry: &ErrorCode, info: impl Into<String>) -> Response {
    Response::fail(entry.code, info)
}

/// The answer for a group that is not there: the service tells a dismissed group
/// from an id that never was one.
fn missing(dismissed: bool) -> Response {
    if dismissed {
        fail(&codes::GROUP_NOT_FOUND, "group does not exist or was dismissed")
    } else {
        fail(&codes::INVALID_GROUP_ID, "invalid group id: the group does not exist")
    }
}

/// The whole check-and-act of one request, as the service answers it.
fn answer(shared: &Shared, operation: Option<Operation>, query: &str, body: &[u8]) -> Response {
    let Some(operation) = operation else {
        return fail(&codes::WRONG_URL, "wrong request URL");
    };
    if let Err(failure) = authenticate(shared, query) {
        return failure;
    }
    if !shared.endpoint_allows(operation) {
        return fail(&codes::CALL_FREQUENCY_EXCEEDED, "REST API call frequency exceeded");
    }
    let body: serde_json::Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(body)) => body,
        Ok(_) | Err(_) => return fail(&codes::JSON_PARSE_ERROR, "JSON body parse error"),
    };
    if operation == Operation::CreateGroup {
        return create_group(shared, &body);
    }
    let group = match body.get("GroupId") {
        Some(Value::String(text)) => match GroupId::parse(text) {
            Ok(group) => group,
            Err(e) => return fail(&codes::INVALID_GROUP_ID, format!("invalid GroupId: {e}")),
        },
        Some(_) => return fail(&codes::INVALID_PARAMETER, "GroupId must be a string"),
        None => return fail(&codes::INVALID_PARAMETER, "GroupId is required"),
    };
    if operation == Operation::DeleteGroupAttr
        && let Err(failure) = delete_items(&body)
    {
        return failure;
    }
    let exists = shared.with_world(|world| (world.groups.contains_key(&group), false));
    if !exists {
        let dismissed = shared.with_world(|world| (world.dismissed.contains(&group), false));
        if shared.config.auto_create_groups && operation.writes_attributes() && !dismissed {
            let kind = GroupType::implied_by(&group);
            shared.with_world(|world| {
                world.groups.insert(group.clone(), Group { kind, attributes: AttributeSet::new() });
                ((), true)
            });
        } else {
            return missing(dismissed);
        }
    }
    shared.record_group_call(&group, operation.writes_attributes());
    if operation.writes_attributes() && !shared.group_allows(&group) {
        return fail(&codes::GROUP_WRITES_THROTTLED, "per-group write frequency exceeded");
    }
    match operation {
        Operation::GetGroupAttr => get_group_attr(shared, &group),
        Operation::SetGroupAttr | Operation::ModifyGroupAttr => write_group_attr(shared, operation, &group, &body),
        Operation::ClearGroupAttr => clear_group_attr(shared, &group),
        Operation::DeleteGroupAttr => delete_group_attr(shared, &group, &body),
        Operation::DestroyGroup => {
            shared.dismiss(&group);
            Response::ok()
        }
        Operation::CreateGroup => unreachable!("handled above"),
    }
}

/// The envelope's query: app, admin, UserSig, random and content type, checked
/// in the order the service documents its codes.
fn authenticate(shared: &Shared, query: &str) -> Result<(), Response> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |name: &str| params.get(name).map(String::as_str);
    let sdkappid = match get("sdkappid").map(str::parse::<u64>) {
        Some(Ok(n)) => n,
        None => return Err(fail(&codes::SDKAPPID_REQUIRED, "the REST API needs an SDKAppID")),
        Some(Err(_)) => return Err(fail(&codes::SDKAPPID_INVALID, "SDKAppID invalid")),
    };
    if sdkappid != shared.config.sdkappid {
        return Err(fail(&codes::SDKAPPID_NOT_FOUND, "SDKAppID not found"));
    }
    let Some(identifier) = get("identifier").filter(|i| !i.is_empty()) else {
        return Err(fail(&codes::ACCOUNT_OR_SIGNATURE_ERROR, "identifier is missing"));
    };
    let Some(sig) = get("usersig").filter(|s| !s.is_empty()) else {
        return Err(fail(&codes::ACCOUNT_OR_SIGNATURE_ERROR, "usersig is missing"));
    };
    if !matches!(get("random").map(str::parse::<u32>), Some(Ok(_))) {
        return Err(fail(&codes::HTTP_PARSE_ERROR, "random must be an unsigned 32-bit integer"));
    }
    if get("contenttype") != Some("json") {
        return Err(fail(&codes::HTTP_PARSE_ERROR, "contenttype must be json"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Err(e) = usersig::verify(&shared.config.key, sig, sdkappid, identifier, now) {
        return Err(Response::fail(e.code(), e.to_string()));
    }
    if !shared.config.admins.iter().any(|admin| admin == identifier) {
        return Err(fail(&codes::NOT_ADMIN, "the request needs app admin permission"));
    }
    Ok(())
}

/// The `GroupAttr` items of a body, checked: keys (and values, when `with_values`) are strings, no key twice.
fn attr_items(body: &serde_json::Map<String, Value>, with_values: bool) -> Result<Vec<AttrItem>, Response> {
    let Some(Value::Array(items)) = body.get("GroupAttr") else {
        return Err(fail(&codes::INVALID_PARAMETER, "GroupAttr must be an array"));
    };
    let mut parsed: Vec<AttrItem> = Vec::with_capacity(items.len());
    for item in items {
        let item: AttrItem = serde_json::from_value(item.clone()).map_err(|_| {
            fail(&codes::INVALID_PARAMETER, "each GroupAttr item is {\"key\": string, \"value\": string}")
        })?;
        if with_values && item.value.is_none() {
            return Err(fail(&codes::INVALID_PARAMETER, format!("GroupAttr item {:?} has no value", item.key)));
        }
        if parsed.iter().any(|p| p.key == item.key) {
            return Err(fail(&codes::INVALID_PARAMETER, format!("key {:?} is given twice", item.key)));
        }
        parsed.push(item);
    }
    Ok(parsed)
}

fn limits_check(attributes: &AttributeSet) -> Result<(), Response> {
    let violation = limits::check(attributes).into_iter().find(|v| v.severity() == limits::Severity::Error);
    match violation {
        Some(v) => Err(Response::fail(v.limit().code, v.to_string())),
        None => Ok(()),
    }
}

fn get_group_attr(shared: &Shared, group: &GroupId) -> Response {
    let attributes = shared.attributes(group).unwrap_or_default();
    let mut answer = Response::ok();
    if !attributes.is_empty() {
        answer.group_attr_ary = Some(crate::api::wire::items(&attributes));
    }
    answer
}

fn write_group_attr(
    shared: &Shared,
    operation: Operation,
    group: &GroupId,
    body: &serde_json::Map<String, Value>,
) -> Response {
    let items = match attr_items(body, true) {
        Ok(items) => items,
        Err(failure) => return failure,
    };
    if items.is_empty() {
        // The real behaviour is undocumented; grattr never relies on it.
        return fail(&codes::INVALID_PARAMETER, "GroupAttr is empty");
    }
    let given: AttributeSet = items.into_iter().map(|i| (i.key, i.value.unwrap_or_default())).collect();
    shared.with_world(|world| {
        let Some(current) = world.groups.get_mut(group) else {
            return (missing(world.dismissed.contains(group)), false);
        };
        let next = if operation == Operation::SetGroupAttr {
            given
        } else {
            let mut merged = current.attributes.clone();
            merged.extend(given);
            merged
        };
        if let Err(failure) = limits_check(&next) {
            return (failure, false);
        }
        shared.note_write(operation, group, &next);
        current.attributes = next;
        (Response::ok(), true)
    })
}

fn clear_group_attr(shared: &Shared, group: &GroupId) -> Response {
    shared.with_world(|world| match world.groups.get_mut(group) {
        None => (missing(world.dismissed.contains(group)), false),
        // The vendor documents no code for this; the emulator answers the nearest one.
        Some(current) if current.kind == GroupType::Community => {
            (fail(&codes::NO_PERMISSION, "Community groups do not support clear_group_attr"), false)
        }
        Some(current) => {
            current.attributes.clear();
            shared.note_write(Operation::ClearGroupAttr, group, &current.attributes);
            (Response::ok(), true)
        }
    })
}

/// The keys of a `delete_group_attr` body, checked before the group is looked
/// up: the delete page documents the key size code for a key over the limit,
/// whether or not the key exists.
fn delete_items(body: &serde_json::Map<String, Value>) -> Result<Vec<AttrItem>, Response> {
    let items = attr_items(body, false)?;
    if items.is_empty() {
        return Err(fail(&codes::INVALID_PARAMETER, "GroupAttr is empty"));
    }
    if let Some(long) = items.iter().find(|i| i.key.len() > limits::MAX_KEY_BYTES.max) {
        return Err(fail(
            &codes::KEY_TOO_LONG,
            format!("key {:?} is {} bytes, limit {} bytes", long.key, long.key.len(), limits::MAX_KEY_BYTES.max),
        ));
    }
    Ok(items)
}

fn delete_group_attr(shared: &Shared, group: &GroupId, body: &serde_json::Map<String, Value>) -> Response {
    let items = match delete_items(body) {
        Ok(items) => items,
        Err(failure) => return failure,
    };
    shared.with_world(|world| {
        let Some(current) = world.groups.get_mut(group) else {
            return (missing(world.dismissed.contains(group)), false);
        };
        if let Some(absent) = items.iter().find(|i| !current.attributes.contains_key(&i.key)) {
            return (fail(&codes::KEY_NOT_FOUND, format!("key {:?} does not exist", absent.key)), false);
        }
        for item in &items {
            current.attributes.remove(&item.key);
        }
        shared.note_write(Operation::DeleteGroupAttr, group, &current.attributes);
        (Response::ok(), true)
    })
}

fn create_group(shared: &Shared, body: &serde_json::Map<String, Value>) -> Response {
    let kind: GroupType = match body.get("Type").and_then(Value::as_str).map(str::parse) {
        Some(Ok(kind)) => kind,
        _ => return fail(&codes::INVALID_PARAMETER, "Type must be Public, Private, ChatRoom, AVChatRoom or Community"),
    };
    if !matches!(body.get("Name"), Some(Value::String(name)) if !name.is_empty()) {
        return fail(&codes::INVALID_PARAMETER, "Name is required");
    }
    let requested = match body.get("GroupId") {
        None => None,
        Some(Value::String(text)) => {
            let community = text.starts_with("@TGS#_");
            let fits_type = if kind == GroupType::Community { community } else { !text.starts_with("@TGS#") };
            match GroupId::parse(text) {
                Ok(id) if fits_type => Some(id),
                Ok(_) => {
                    return fail(
                        &codes::INVALID_GROUP_ID,
                        "custom ids of Community groups start with @TGS#_, others must not start with @TGS#",
                    );
                }
                Err(e) => return fail(&codes::INVALID_GROUP_ID, e.to_string()),
            }
        }
        Some(_) => return fail(&codes::INVALID_PARAMETER, "GroupId must be a string"),
    };
    shared.with_world(|world| {
        let World { groups, next_id, dismissed } = world;
        let id = match requested {
            Some(id) if groups.contains_key(&id) => {
                return (fail(&codes::GROUP_ID_TAKEN, "group id already taken"), false);
            }
            Some(id) => id,
            None => loop {
                *next_id += 1;
                let text = match kind {
                    GroupType::Community => format!("@TGS#_@TGS#c{:010X}", *next_id),
                    _ => format!("@TGS#a{:010X}", *next_id),
                };
                if let Ok(id) = GroupId::parse(&text)
                    && !groups.contains_key(&id)
                {
                    break id;
                }
            },
        };
        // An id may be used again once its group was dismissed.
        dismissed.remove(&id);
        groups.insert(id.clone(), Group { kind, attributes: AttributeSet::new() });
        let mut answer = Response::ok();
        answer.group_id = Some(id.to_string());
        (answer, true)
    })
}
