//! The one table of the REST API's error codes: what each means, whether and
//! how to retry it, and what the user can do about it. The client, `apply` and
//! the emulator all read it.

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

/// Every documented code, in numeric order.
pub const CODES: &[ErrorCode] = &[
    code(10002, "internal server error", Backoff, "a transient fault of the service; grattr retries it"),
    code(10004, "invalid parameter", Permanent, "the request was refused as malformed; report it with the group id"),
    throttled(10006, "operation frequency limit", Duration::ZERO, "grattr slows down; lower rate_limit if it persists"),
    code(
        10007,
        "no permission (the group type does not support this operation)",
        Permanent,
        "Community groups cannot be cleared; grattr deletes their keys instead",
    ),
    code(
        10010,
        "group does not exist or was disbanded",
        Permanent,
        "check the id, or remove the group from groups/ (and from the lockfile with --prune)",
    ),
    code(
        10015,
        "invalid group id",
        Permanent,
        "group ids are 1 to 48 printable ASCII bytes; topics have no attributes",
    ),
    code(10021, "group id already taken", Permanent, "choose another id"),
    code(10045, "key over 32 bytes", Permanent, "grattr validate catches this; shorten the key"),
    code(10046, "value over 4000 bytes", Permanent, "grattr validate catches this; shorten the value"),
    code(10047, "more than 16 keys", Permanent, "grattr validate catches this; remove keys"),
    code(10048, "values over 16000 bytes in total", Permanent, "grattr validate catches this; shorten values"),
    throttled(
        10049,
        "per-group write frequency exceeded (5/s)",
        Duration::from_secs(1),
        "grattr waits at least a second and retries",
    ),
    code(10050, "the key to delete does not exist", Permanent, "nothing to delete: the key is already gone"),
    code(60002, "HTTP parse error", Permanent, "check endpoint: a proxy may be rewriting requests"),
    code(60003, "JSON body parse error", Permanent, "check endpoint: a proxy may be rewriting requests"),
    code(60004, "account or signature error in the request", Permanent, "check admin and the secret key"),
    code(60005, "account or signature error in the request", Permanent, "check admin and the secret key"),
    code(60006, "SDKAppID invalid", Permanent, "check sdkappid in grattr.yaml"),
    throttled(
        60007,
        "REST API call frequency exceeded",
        Duration::ZERO,
        "grattr slows down; lower rate_limit, the app's own backend shares the budget",
    ),
    code(60008, "service timeout or bad HTTP format", Backoff, "a transient fault; grattr retries it"),
    code(60009, "wrong request URL", Permanent, "check endpoint or region in grattr.yaml"),
    code(60010, "the identifier is not an app admin", Permanent, "set admin in grattr.yaml to an app admin account"),
    throttled(
        60011,
        "SDKAppID request frequency exceeded",
        Duration::ZERO,
        "grattr slows down; lower rate_limit, the app's own backend shares the budget",
    ),
    code(60014, "account exchange timed out", Backoff, "a transient fault; grattr retries it"),
    code(60016, "SDKAppID disabled", Permanent, "the app is disabled in the console"),
    code(60017, "request disabled", Permanent, "the app's REST API access is disabled in the console"),
    throttled(60018, "requests too frequent", Duration::ZERO, "grattr slows down; lower rate_limit"),
    throttled(60019, "requests too frequent", Duration::ZERO, "grattr slows down; lower rate_limit"),
    code(60020, "plan expired", Permanent, "renew the app's plan in the console"),
    code(60021, "caller IP not in the allow-list", Permanent, "add this machine's IP to the app's allow-list"),
    code(70001, "UserSig expired", RenewUserSig, "grattr makes a new one; check the machine's clock if it persists"),
    code(70003, "UserSig malformed", Permanent, "a proxy may be mangling the query string"),
    code(
        70009,
        "UserSig verification failed",
        Permanent,
        "the secret key is wrong: check the variable named by secret_key_env",
    ),
    code(70013, "identifier differs from the UserSig's", Permanent, "check admin in grattr.yaml"),
    code(70014, "SDKAppID differs from the UserSig's", Permanent, "check sdkappid in grattr.yaml"),
    code(70016, "key not found", Permanent, "the app was created in another region: check region in grattr.yaml"),
    code(70020, "SDKAppID not found", Permanent, "the app was created in another region: check region in grattr.yaml"),
    code(70050, "too many UserSig failures; wait 60 s", Permanent, "fix the secret key, then wait a minute"),
];

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
    match code {
        60004 | 60005 | 70001 | 70003 | 70009 | 70050 => Some(AppWide::Credentials),
        60010 | 70013 => Some(AppWide::Account),
        60006 | 60016 | 60017 | 60020 | 60021 | 70014 => Some(AppWide::App),
        60009 | 70016 | 70020 => Some(AppWide::Region),
        _ => None,
    }
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
        for code in [10002, 10006, 10049, 60007, 60008, 60011, 60014, 60018, 60019] {
            assert_eq!(class(code), RetryClass::Backoff, "{code}");
        }
        assert_eq!(class(70001), RetryClass::RenewUserSig);
        for code in [10004, 10007, 10010, 10015, 10045, 10046, 10047, 10048, 10050, 60010, 70009, 70050, 99999] {
            assert_eq!(class(code), RetryClass::Permanent, "{code}");
        }
        let throttles: Vec<u32> = CODES.iter().filter(|c| c.throttle).map(|c| c.code).collect();
        assert_eq!(throttles, vec![10006, 10049, 60007, 60011, 60018, 60019]);
        assert_eq!(lookup(10049).unwrap().min_wait, Duration::from_secs(1));
        assert!(lookup(12345).is_none());
    }

    #[test]
    fn the_limit_codes_are_the_limits_table_codes() {
        use crate::model::limits;
        for limit in [limits::MAX_KEY_BYTES, limits::MAX_VALUE_BYTES, limits::MAX_KEYS, limits::MAX_TOTAL_VALUE_BYTES] {
            assert!(lookup(limit.code).is_some(), "{}", limit.code);
        }
    }
}
