//! The HTTP face of the emulator: envelope, authentication, limits, faults,
//! and the endpoints' documented behaviour.

use super::Latency;
use super::state::{Group, Shared};
use crate::api::usersig;
use crate::api::wire::{AttrItem, Endpoint, GroupType, Response};
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
        .fallback(handle)
        .with_state(App { shared, stop })
}

async fn stats(State(app): State<App>) -> impl IntoResponse {
    Json(app.shared.stats())
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
    let endpoint = Endpoint::ALL.iter().copied().find(|e| uri.path().trim_start_matches('/') == e.path());
    shared.record_call(endpoint);
    if let Some(latency) = pick_latency(shared.config.latency) {
        sleep_or_stop(&app.stop, latency).await;
    }
    if shared.config.fault_rate > 0.0 && rand::random::<f64>() < shared.config.fault_rate {
        match rand::random_range(0..4) {
            0 => {
                shared.record_fault("10002");
                return envelope(shared, Response::fail(10002, "internal server error (injected)"));
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
    let answer = answer(shared, endpoint, query.as_deref().unwrap_or_default(), &body);
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

/// The whole check-and-act of one request, as the service answers it.
fn answer(shared: &Shared, endpoint: Option<Endpoint>, query: &str, body: &[u8]) -> Response {
    let Some(endpoint) = endpoint else {
        return Response::fail(60009, "wrong request URL");
    };
    if let Err(failure) = authenticate(shared, query) {
        return failure;
    }
    if !shared.endpoint_allows(endpoint) {
        return Response::fail(60007, "REST API call frequency exceeded");
    }
    let body: serde_json::Map<String, Value> = match serde_json::from_slice(body) {
        Ok(Value::Object(body)) => body,
        Ok(_) | Err(_) => return Response::fail(60003, "JSON body parse error"),
    };
    if endpoint == Endpoint::CreateGroup {
        return create_group(shared, &body);
    }
    let group = match body.get("GroupId") {
        Some(Value::String(text)) => match GroupId::parse(text) {
            Ok(group) => group,
            Err(e) => return Response::fail(10015, format!("invalid GroupId: {e}")),
        },
        Some(_) => return Response::fail(10004, "GroupId must be a string"),
        None => return Response::fail(10004, "GroupId is required"),
    };
    let exists = shared.with_world(|groups, _| (groups.contains_key(&group), false));
    if !exists {
        if shared.config.auto_create_groups && endpoint.writes_attributes() {
            let kind = GroupType::implied_by(&group);
            shared.with_world(|groups, _| {
                groups.insert(group.clone(), Group { kind, attributes: AttributeSet::new() });
                ((), true)
            });
        } else {
            return Response::fail(10010, "group does not exist or was disbanded");
        }
    }
    shared.record_group_call(&group, endpoint.writes_attributes());
    if endpoint.writes_attributes() && !shared.group_allows(&group) {
        return Response::fail(10049, "per-group write frequency exceeded");
    }
    match endpoint {
        Endpoint::GetGroupAttr => get_group_attr(shared, &group),
        Endpoint::SetGroupAttr | Endpoint::ModifyGroupAttr => write_group_attr(shared, endpoint, &group, &body),
        Endpoint::ClearGroupAttr => clear_group_attr(shared, &group),
        Endpoint::DeleteGroupAttr => delete_group_attr(shared, &group, &body),
        Endpoint::DestroyGroup => {
            shared.with_world(|groups, _| (groups.remove(&group), true));
            Response::ok()
        }
        Endpoint::CreateGroup => unreachable!("handled above"),
    }
}

/// The envelope's query: app, admin, UserSig, random and content type, checked
/// in the order the service documents its codes.
fn authenticate(shared: &Shared, query: &str) -> Result<(), Response> {
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let get = |name: &str| params.get(name).map(String::as_str);
    let sdkappid = match get("sdkappid").map(str::parse::<u64>) {
        Some(Ok(n)) => n,
        _ => return Err(Response::fail(60006, "SDKAppID invalid")),
    };
    if sdkappid != shared.config.sdkappid {
        return Err(Response::fail(70020, "SDKAppID not found"));
    }
    let Some(identifier) = get("identifier").filter(|i| !i.is_empty()) else {
        return Err(Response::fail(60004, "identifier is missing"));
    };
    let Some(sig) = get("usersig").filter(|s| !s.is_empty()) else {
        return Err(Response::fail(60004, "usersig is missing"));
    };
    if !matches!(get("random").map(str::parse::<u32>), Some(Ok(_))) {
        return Err(Response::fail(60002, "random must be an unsigned 32-bit integer"));
    }
    if get("contenttype") != Some("json") {
        return Err(Response::fail(60002, "contenttype must be json"));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if let Err(e) = usersig::verify(&shared.config.key, sig, sdkappid, identifier, now) {
        return Err(Response::fail(e.code(), e.to_string()));
    }
    if !shared.config.admins.iter().any(|admin| admin == identifier) {
        return Err(Response::fail(60010, "the request needs app admin permission"));
    }
    Ok(())
}

/// The `GroupAttr` items of a body, checked: keys (and values, when `with_values`) are strings, no key twice.
fn attr_items(body: &serde_json::Map<String, Value>, with_values: bool) -> Result<Vec<AttrItem>, Response> {
    let Some(Value::Array(items)) = body.get("GroupAttr") else {
        return Err(Response::fail(10004, "GroupAttr must be an array"));
    };
    let mut parsed: Vec<AttrItem> = Vec::with_capacity(items.len());
    for item in items {
        let item: AttrItem = serde_json::from_value(item.clone())
            .map_err(|_| Response::fail(10004, "each GroupAttr item is {\"key\": string, \"value\": string}"))?;
        if with_values && item.value.is_none() {
            return Err(Response::fail(10004, format!("GroupAttr item {:?} has no value", item.key)));
        }
        if parsed.iter().any(|p| p.key == item.key) {
            return Err(Response::fail(10004, format!("key {:?} is given twice", item.key)));
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
    endpoint: Endpoint,
    group: &GroupId,
    body: &serde_json::Map<String, Value>,
) -> Response {
    let items = match attr_items(body, true) {
        Ok(items) => items,
        Err(failure) => return failure,
    };
    if items.is_empty() {
        // The real behaviour is undocumented; grattr never relies on it.
        return Response::fail(10004, "GroupAttr is empty");
    }
    let given: AttributeSet = items.into_iter().map(|i| (i.key, i.value.unwrap_or_default())).collect();
    shared.with_world(|groups, _| {
        let Some(current) = groups.get_mut(group) else {
            return (Response::fail(10010, "group does not exist or was disbanded"), false);
        };
        let next = if endpoint == Endpoint::SetGroupAttr {
            given
        } else {
            let mut merged = current.attributes.clone();
            merged.extend(given);
            merged
        };
        if let Err(failure) = limits_check(&next) {
            return (failure, false);
        }
        current.attributes = next;
        (Response::ok(), true)
    })
}

fn clear_group_attr(shared: &Shared, group: &GroupId) -> Response {
    shared.with_world(|groups, _| match groups.get_mut(group) {
        None => (Response::fail(10010, "group does not exist or was disbanded"), false),
        Some(current) if current.kind == GroupType::Community => {
            (Response::fail(10007, "Community groups do not support clear_group_attr"), false)
        }
        Some(current) => {
            current.attributes.clear();
            (Response::ok(), true)
        }
    })
}

fn delete_group_attr(shared: &Shared, group: &GroupId, body: &serde_json::Map<String, Value>) -> Response {
    let items = match attr_items(body, false) {
        Ok(items) if items.is_empty() => return Response::fail(10004, "GroupAttr is empty"),
        Ok(items) => items,
        Err(failure) => return failure,
    };
    shared.with_world(|groups, _| {
        let Some(current) = groups.get_mut(group) else {
            return (Response::fail(10010, "group does not exist or was disbanded"), false);
        };
        if let Some(missing) = items.iter().find(|i| !current.attributes.contains_key(&i.key)) {
            return (Response::fail(10050, format!("key {:?} does not exist", missing.key)), false);
        }
        for item in &items {
            current.attributes.remove(&item.key);
        }
        (Response::ok(), true)
    })
}

fn create_group(shared: &Shared, body: &serde_json::Map<String, Value>) -> Response {
    let kind: GroupType = match body.get("Type").and_then(Value::as_str).map(str::parse) {
        Some(Ok(kind)) => kind,
        _ => return Response::fail(10004, "Type must be Public, Private, ChatRoom, AVChatRoom or Community"),
    };
    if !matches!(body.get("Name"), Some(Value::String(name)) if !name.is_empty()) {
        return Response::fail(10004, "Name is required");
    }
    let requested = match body.get("GroupId") {
        None => None,
        Some(Value::String(text)) => {
            let community = text.starts_with("@TGS#_");
            let fits_type = if kind == GroupType::Community { community } else { !text.starts_with("@TGS#") };
            match GroupId::parse(text) {
                Ok(id) if fits_type => Some(id),
                Ok(_) => {
                    return Response::fail(
                        10015,
                        "custom ids of Community groups start with @TGS#_, others must not start with @TGS#",
                    );
                }
                Err(e) => return Response::fail(10015, e.to_string()),
            }
        }
        Some(_) => return Response::fail(10004, "GroupId must be a string"),
    };
    shared.with_world(|groups, next_id| {
        let id = match requested {
            Some(id) if groups.contains_key(&id) => return (Response::fail(10021, "group id already taken"), false),
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
        groups.insert(id.clone(), Group { kind, attributes: AttributeSet::new() });
        let mut answer = Response::ok();
        answer.group_id = Some(id.to_string());
        (answer, true)
    })
}
