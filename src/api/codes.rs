//! The one table of the REST API's error codes: what each means, whether and
//! how to retry it, and what the user can do about it. Every code has a name
//! here; the client, `apply`, `live`, `drift`, `watch` and the emulator read the
//! names, never a bare number (a test holds the rest of `src/` to that).
//! Adding a code is one line in the `table!` invocation below. The HTTP statuses
//! other than 200 have their table here too ([`HTTP_STATUSES`]): which come from a
//! gateway of the moment, and which say the endpoint is not the REST API.

use crate::model::limits;
use std::time::Duration;

/// What to do when a call fails with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryClass {
    /// Transient: retry with exponential backoff.
    Backoff,
    /// The UserSig expired: make a new one and retry once.
    RenewUserSig,
    /// Retrying cannot help.
    Permanent,
}

/// One documented error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode {
    /// The code.
    pub code: u32,
    /// What it means.
    pub meaning: &'static str,
    /// Whether to retry.
    pub class: RetryClass,
    /// The server is throttling: slow down, not only retry.
    pub throttle: bool,
    /// The least time to wait before a retry.
    pub min_wait: Duration,
    /// What the user can do.
    pub hint: &'static str,
}

const fn code(code: u32, meaning: &'static str, class: RetryClass, hint: &'static str) -> ErrorCode {
    ErrorCode { code, meaning, class, throttle: false, min_wait: Duration::ZERO, hint }
}

const fn throttled(code: u32, meaning: &'static str, min_wait: Duration, hint: &'static str) -> ErrorCode {
    ErrorCode { code, meaning, class: RetryClass::Backoff, throttle: true, min_wait, hint }
}

use RetryClass::{Backoff, Permanent, RenewUserSig};

/// Names each entry as a constant and lists them all in [`CODES`]. The braces
/// keep rustfmt from spreading an entry over several lines.
macro_rules! table {
    ($($(#[$doc:meta])* $name:ident = $entry:expr;)*) => {
        $($(#[$doc])* pub const $name: ErrorCode = $entry;)*
        /// Every documented code, in numeric order.
        pub const CODES: &[ErrorCode] = &[$($name),*];
    };
}

const GATEWAY_HINT: &str = "check endpoint: a proxy may be rewriting requests";
const MISSING_HINT: &str = "check the id, or remove the group from groups/ (and from the lockfile with --prune)";

table! {
    /// A transient fault of the service.
    INTERNAL_ERROR = code(10002, "internal server error", Backoff, "a transient fault of the service; grattr retries it");
    /// The command word of the URL is not one the service knows.
    INVALID_COMMAND = code(10003, "invalid command (request URL)", Permanent, "check endpoint: the path is not a REST API command");
    /// A malformed request.
    INVALID_PARAMETER = code(10004, "invalid parameter", Permanent, "the request was refused as malformed; report it with the group id");
    /// Too many operations.
    FREQUENCY_LIMIT = throttled(10006, "operation frequency limit", Duration::ZERO, "grattr slows down; lower rate_limit if it persists");
    /// The group's type does not support the operation (e.g. clear on a Community group, or attributes on a topic).
    NO_PERMISSION = code(10007, "no permission (the group type does not support this operation)", Permanent, "this group type does not support custom attributes (or this operation on them); Community groups are cleared by deleting their keys");
    /// The request's signature did not verify.
    INVALID_REQUEST = code(10008, "invalid request (the signature may not verify)", Permanent, "check admin and the secret key");
    /// The group was dismissed (or never existed: the service also answers [`INVALID_GROUP_ID`] for that).
    GROUP_NOT_FOUND = code(10010, "group does not exist or was dismissed", Permanent, MISSING_HINT);
    /// The JSON body does not parse.
    INVALID_JSON = code(10011, "JSON body parse error", Permanent, GATEWAY_HINT);
    /// An invalid group id: for an id that passes grattr's own checks, a group that does not exist.
    INVALID_GROUP_ID = code(10015, "invalid group id (the group does not exist)", Permanent, "the group does not exist (it was never created, or the id is mistyped): check the id, or remove the group from groups/ (and from the lockfile with --prune)");
    /// `create_group` with an id in use.
    GROUP_ID_TAKEN = code(10021, "group id already taken", Permanent, "choose another id");
    /// A key over [`limits::MAX_KEY_BYTES`].
    KEY_TOO_LONG = code(limits::MAX_KEY_BYTES.code, "key over 32 bytes", Permanent, "grattr validate catches this; shorten the key");
    /// A value over [`limits::MAX_VALUE_BYTES`].
    VALUE_TOO_LONG = code(limits::MAX_VALUE_BYTES.code, "value over 4000 bytes", Permanent, "grattr validate catches this; shorten the value");
    /// More keys than [`limits::MAX_KEYS`].
    TOO_MANY_KEYS = code(limits::MAX_KEYS.code, "more than 16 keys", Permanent, "grattr validate catches this; remove keys");
    /// Values over [`limits::MAX_TOTAL_VALUE_BYTES`] in total.
    TOTAL_TOO_LARGE = code(limits::MAX_TOTAL_VALUE_BYTES.code, "values over 16000 bytes in total", Permanent, "grattr validate catches this; shorten values");
    /// More writes to one group than [`limits::MAX_GROUP_WRITES_PER_SECOND`].
    GROUP_WRITES_THROTTLED = throttled(limits::MAX_GROUP_WRITES_PER_SECOND.code, "per-group write frequency exceeded (5/s)", Duration::from_secs(1), "grattr waits at least a second and retries");
    /// `delete_group_attr` of a key that is not there.
    KEY_NOT_FOUND = code(10050, "the key to delete does not exist", Permanent, "nothing to delete: the key is already gone");
    /// The HTTP request does not parse.
    HTTP_PARSE_ERROR = code(60002, "HTTP parse error", Permanent, GATEWAY_HINT);
    /// The JSON body does not parse.
    JSON_PARSE_ERROR = code(60003, "JSON body parse error", Permanent, GATEWAY_HINT);
    /// A missing or wrong account or signature.
    ACCOUNT_OR_SIGNATURE_ERROR = code(60004, "account or signature error in the request", Permanent, "check admin and the secret key");
    /// The same, as the service also answers it.
    ACCOUNT_OR_SIGNATURE_ERROR_2 = code(60005, "account or signature error in the request", Permanent, "check admin and the secret key");
    /// The SDKAppID is not valid.
    SDKAPPID_INVALID = code(60006, "SDKAppID invalid", Permanent, "check sdkappid in grattr.yaml");
    /// More calls than [`limits::MAX_CALLS_PER_SECOND`].
    CALL_FREQUENCY_EXCEEDED = throttled(limits::MAX_CALLS_PER_SECOND.code, "REST API call frequency exceeded", Duration::ZERO, "grattr slows down; lower rate_limit, the app's own backend shares the budget");
    /// A timeout inside the service, or a bad HTTP format.
    SERVICE_TIMEOUT = code(60008, "service timeout or bad HTTP format", Backoff, "a transient fault; grattr retries it");
    /// A wrong URL.
    WRONG_URL = code(60009, "wrong request URL", Permanent, "check endpoint or region in grattr.yaml");
    /// The identifier is not an app admin.
    NOT_ADMIN = code(60010, "the identifier is not an app admin", Permanent, "set admin in grattr.yaml to an app admin account");
    /// The app's request frequency is exceeded.
    SDKAPPID_FREQUENCY_EXCEEDED = throttled(60011, "SDKAppID request frequency exceeded", Duration::ZERO, "grattr slows down; lower rate_limit, the app's own backend shares the budget");
    /// A request without `sdkappid`.
    SDKAPPID_REQUIRED = code(60012, "the request carries no SDKAppID", Permanent, GATEWAY_HINT);
    /// The service's answer does not parse (inside the service).
    RESPONSE_JSON_ERROR = code(60013, "HTTP response JSON parse error", Backoff, "a fault inside the service; grattr retries it");
    /// Account exchange timed out.
    ACCOUNT_EXCHANGE_TIMEOUT = code(60014, "account exchange timed out", Backoff, "a transient fault; grattr retries it");
    /// An account in the body is not a string.
    ACCOUNT_TYPE_ERROR = code(60015, "wrong account type in the body (accounts are strings)", Permanent, "the request was refused as malformed; report it");
    /// The app is disabled.
    SDKAPPID_DISABLED = code(60016, "SDKAppID disabled", Permanent, "the app is disabled in the console");
    /// Requests are disabled.
    REQUEST_DISABLED = code(60017, "request disabled", Permanent, "the app's REST API access is disabled in the console");
    /// Requests too frequent.
    TOO_FREQUENT = throttled(60018, "requests too frequent", Duration::ZERO, "grattr slows down; lower rate_limit");
    /// Requests too frequent (another variant).
    TOO_FREQUENT_2 = throttled(60019, "requests too frequent", Duration::ZERO, "grattr slows down; lower rate_limit");
    /// The plan expired.
    PLAN_EXPIRED = code(60020, "plan expired", Permanent, "renew the app's plan in the console");
    /// The caller's IP is not allowed.
    IP_NOT_ALLOWED = code(60021, "caller IP not in the allow-list", Permanent, "add this machine's IP to the app's allow-list");
    /// The UserSig expired.
    USERSIG_EXPIRED = code(70001, "UserSig expired", RenewUserSig, "grattr makes a new one; check the machine's clock if it persists");
    /// The UserSig is malformed.
    USERSIG_MALFORMED = code(70003, "UserSig malformed", Permanent, "a proxy may be mangling the query string");
    /// The UserSig does not verify.
    USERSIG_BAD_SIGNATURE = code(70009, "UserSig verification failed", Permanent, "the secret key is wrong: check the variable named by secret_key_env, or --secret-key-file");
    /// The identifier differs from the UserSig's.
    USERSIG_IDENTIFIER_MISMATCH = code(70013, "identifier differs from the UserSig's", Permanent, "check admin in grattr.yaml");
    /// The SDKAppID differs from the UserSig's.
    USERSIG_SDKAPPID_MISMATCH = code(70014, "SDKAppID differs from the UserSig's", Permanent, "check sdkappid in grattr.yaml");
    /// The key is not found (another region?).
    KEY_NOT_FOUND_IN_REGION = code(70016, "key not found", Permanent, "the app was created in another region: check region in grattr.yaml");
    /// The SDKAppID is not found (another region?).
    SDKAPPID_NOT_FOUND = code(70020, "SDKAppID not found", Permanent, "the app was created in another region: check region in grattr.yaml");
    /// Too many UserSig failures.
    USERSIG_FAILURES_TOO_FREQUENT = code(70050, "too many UserSig failures; wait 60 s", Permanent, "fix the secret key, then wait a minute");
    /// The admin account is blocklisted.
    ACCOUNT_BLOCKLISTED = code(70051, "the account is blocklisted", Permanent, "the admin account was blocklisted: use another admin, or ask the vendor's support");
    /// The account does not exist.
    ACCOUNT_NOT_FOUND = code(70107, "the account does not exist", Permanent, "check admin in grattr.yaml: the account must be imported and an app admin");
}

/// The entry for `code`, if it is documented.
pub fn lookup(code: u32) -> Option<&'static ErrorCode> {
    CODES.binary_search_by_key(&code, |entry| entry.code).ok().map(|index| &CODES[index])
}

/// The retry class of `code`; undocumented codes are permanent.
pub fn class(code: u32) -> RetryClass {
    lookup(code).map_or(RetryClass::Permanent, |entry| entry.class)
}

/// Whether `code` can only be about the app, never about one group: credentials,
/// admin account, app or data centre refused. Retrying other groups cannot help, so
/// a run stops at it ([`crate::api::scope`]). 70001 counts: the client renews the
/// UserSig once, so a 70001 that reaches the caller was refused after the renewal.
pub fn app_wide(code: u32) -> Option<crate::api::scope::AppWide> {
    use crate::api::scope::AppWide;
    const CREDENTIALS: &[ErrorCode] = &[
        ACCOUNT_OR_SIGNATURE_ERROR,
        ACCOUNT_OR_SIGNATURE_ERROR_2,
        USERSIG_EXPIRED,
        USERSIG_MALFORMED,
        USERSIG_BAD_SIGNATURE,
        USERSIG_FAILURES_TOO_FREQUENT,
    ];
    const ACCOUNT: &[ErrorCode] = &[NOT_ADMIN, USERSIG_IDENTIFIER_MISMATCH];
    const APP: &[ErrorCode] = &[
        SDKAPPID_INVALID,
        SDKAPPID_DISABLED,
        REQUEST_DISABLED,
        PLAN_EXPIRED,
        IP_NOT_ALLOWED,
        USERSIG_SDKAPPID_MISMATCH,
    ];
    const REGION: &[ErrorCode] = &[WRONG_URL, KEY_NOT_FOUND_IN_REGION, SDKAPPID_NOT_FOUND];
    let within = |set: &[ErrorCode]| set.iter().any(|entry| entry.code == code);
    [(CREDENTIALS, AppWide::Credentials), (ACCOUNT, AppWide::Account), (APP, AppWide::App), (REGION, AppWide::Region)]
        .into_iter()
        .find_map(|(set, scope)| within(set).then_some(scope))
}

/// What an HTTP status other than 200 says. The REST API answers 200 always, with
/// the outcome in the body; other statuses come from what stands in front of it
/// (a gateway, a proxy) or from a server that is not the API at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusClass {
    /// A gateway or proxy in front of the API, for the moment: retried with backoff.
    Transient,
    /// The Chat REST API never answers it: something else listens at the endpoint,
    /// so every call would get the same. Not retried; the run stops at the first.
    NotTheApi,
}

/// One entry of [`HTTP_STATUSES`]: a range of statuses and what they say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpStatus {
    /// The first status of the range.
    pub from: u16,
    /// The last status of the range.
    pub to: u16,
    /// What they say.
    pub class: StatusClass,
    /// Who answers them, and why so.
    pub why: &'static str,
}

const fn status(from: u16, to: u16, class: StatusClass, why: &'static str) -> HttpStatus {
    HttpStatus { from, to, class, why }
}

/// The one table of HTTP statuses, in order; a status outside every range is
/// [`StatusClass::NotTheApi`] (1xx, 2xx other than 200, 3xx: redirects are never
/// followed, as the UserSig is in the query; and 4xx other than 408 and 429). The README's "How grattr calls the
/// API" shows it.
pub const HTTP_STATUSES: &[HttpStatus] = &[
    status(408, 408, StatusClass::Transient, "a proxy timed out waiting for the request"),
    status(429, 429, StatusClass::Transient, "a gateway throttles: slow down and retry"),
    status(500, 500, StatusClass::Transient, "a fault of a gateway or of the service"),
    status(501, 501, StatusClass::NotTheApi, "the server does not implement POST (e.g. `python3 -m http.server`)"),
    status(502, 504, StatusClass::Transient, "a gateway lost, or waits for, the service behind it"),
    status(505, 511, StatusClass::NotTheApi, "HTTP version, WebDAV or captive-portal answers, never the API's"),
    status(512, 599, StatusClass::Transient, "a gateway's own 5xx (e.g. a CDN's 52x): of the moment"),
];

/// What `code`, an HTTP status other than 200, says (see [`HTTP_STATUSES`]).
pub fn http_status(code: u16) -> StatusClass {
    HTTP_STATUSES
        .iter()
        .find(|entry| (entry.from..=entry.to).contains(&code))
        .map_or(StatusClass::NotTheApi, |entry| entry.class)
}

/// The codes that say a group does not exist: dismissed ([`GROUP_NOT_FOUND`]) or
/// never created ([`INVALID_GROUP_ID`], which the get/set/delete pages define as
/// "the group does not exist" too). grattr only ever sends ids that pass its own
/// validation, so for grattr's calls an invalid id means a missing group.
pub const MISSING_GROUP: [ErrorCode; 2] = [GROUP_NOT_FOUND, INVALID_GROUP_ID];

/// Whether `code` says the group does not exist.
pub fn means_missing_group(code: u32) -> bool {
    MISSING_GROUP.iter().any(|entry| entry.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique() {
        assert!(CODES.windows(2).all(|w| w[0].code < w[1].code));
    }

    #[test]
    fn classes_follow_the_reference() {
        for code in [10002, 10006, 10049, 60007, 60008, 60011, 60013, 60014, 60018, 60019] {
            assert_eq!(class(code), RetryClass::Backoff, "{code}");
        }
        assert_eq!(class(70001), RetryClass::RenewUserSig);
        for code in [
            10003, 10004, 10007, 10008, 10010, 10011, 10015, 10045, 10046, 10047, 10048, 10050, 60010, 60012, 60015,
            70009, 70050, 70051, 70107, 99999,
        ] {
            assert_eq!(class(code), RetryClass::Permanent, "{code}");
        }
        let throttles: Vec<u32> = CODES.iter().filter(|c| c.throttle).map(|c| c.code).collect();
        assert_eq!(throttles, vec![10006, 10049, 60007, 60011, 60018, 60019]);
        assert_eq!(lookup(10049).unwrap().min_wait, Duration::from_secs(1));
        assert!(lookup(12345).is_none());
    }

    #[test]
    fn statuses_the_api_never_answers_are_told_from_a_gateway_of_the_moment() {
        assert!(HTTP_STATUSES.windows(2).all(|w| w[0].to < w[1].from), "sorted, no overlap");
        for status in [408, 429, 500, 502, 503, 504, 520, 522, 599] {
            assert_eq!(http_status(status), StatusClass::Transient, "{status}");
        }
        for status in [100, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 407, 410, 418, 501, 505, 511, 600] {
            assert_eq!(http_status(status), StatusClass::NotTheApi, "{status}");
        }
    }

    #[test]
    fn both_missing_codes_mean_a_missing_group() {
        assert!(means_missing_group(10010) && means_missing_group(10015));
        assert!(!means_missing_group(10007));
        assert_eq!(lookup(10015).unwrap().code, INVALID_GROUP_ID.code);
        assert!(INVALID_GROUP_ID.hint.contains("does not exist"));
        assert!(NO_PERMISSION.hint.contains("does not support custom attributes"));
    }

    #[test]
    fn the_limit_codes_are_the_limits_table_codes() {
        use crate::model::limits;
        for limit in [limits::MAX_KEY_BYTES, limits::MAX_VALUE_BYTES, limits::MAX_KEYS, limits::MAX_TOTAL_VALUE_BYTES] {
            assert!(lookup(limit.code).is_some(), "{}", limit.code);
        }
    }
}
