//! What a failed call says: the kind of failure, the operation and the attempts,
//! how it is retried (by the code table), and the hint shown to the user.

use super::codes::{self, RetryClass};
use super::scope::{AppWide, ConnectFailure};
use super::wire::Operation;
use std::fmt;
use std::time::Duration;

/// What went wrong with a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorKind {
    /// The service answered with an error code.
    Api {
        /// The code.
        code: u32,
        /// The service's description.
        info: String,
    },
    /// The service (or a proxy) answered with an HTTP error status.
    Http {
        /// The status.
        status: u16,
    },
    /// No answer: connection refused or dropped, timeout.
    Transport {
        /// What happened, with no URL and no secret in it.
        message: String,
        /// How the connection could not be made, when the request never left.
        connect: Option<ConnectFailure>,
    },
    /// An answer that is not the REST API's JSON envelope.
    BadResponse {
        /// What was wrong with it.
        message: String,
    },
    /// An answer the REST API never gives (see [`codes::http_status`]), whatever the
    /// status: a status of [`codes::StatusClass::NotTheApi`], a body that is not
    /// JSON, or JSON without `ActionStatus`. Something else listens at the endpoint.
    NotTheApi {
        /// The HTTP status.
        status: u16,
        /// The `Content-Type` sent, if any: scrubbed of the call's secrets, cut short.
        content_type: Option<String>,
        /// The start of the body: scrubbed of the call's secrets, cut short, not escaped.
        body: String,
    },
    /// An answer larger than any the REST API gives: something else answered.
    TooLarge {
        /// The most grattr reads, in bytes.
        limit: usize,
    },
    /// grattr refused to send the request: nothing reached the service.
    Refused {
        /// Why.
        reason: String,
    },
    /// Not sent: the caller's lease on the record was lost (not renewed in time, or
    /// taken over), so another writer may be writing; nothing reached the service.
    LeaseLost,
}

impl ApiError {
    /// Whether the call was never sent because the writer's lease was lost.
    pub fn is_lease_lost(&self) -> bool {
        matches!(self.kind, ErrorKind::LeaseLost)
    }
}

/// A failed call, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ApiError {
    /// The operation called.
    pub operation: Operation,
    /// What went wrong the last time.
    pub kind: ErrorKind,
    /// How many attempts were made.
    pub attempts: u32,
}

impl ApiError {
    /// The API error code, when the service answered with one.
    pub fn code(&self) -> Option<u32> {
        match self.kind {
            ErrorKind::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// Whether the service says the group does not exist: dismissed, or never
    /// created (see [`codes::MISSING_GROUP`]).
    pub fn is_missing_group(&self) -> bool {
        self.code().is_some_and(codes::means_missing_group)
    }

    /// Whether the service answered with the code `entry`.
    pub fn is(&self, entry: &codes::ErrorCode) -> bool {
        self.code() == Some(entry.code)
    }

    /// Whether and how to retry.
    pub fn retry_class(&self) -> RetryClass {
        match &self.kind {
            ErrorKind::Api { code, .. } => codes::class(*code),
            // Only something other than the REST API answers that much; asking
            // again would read as much again.
            // Every call would get the same answer.
            ErrorKind::Refused { .. }
            | ErrorKind::TooLarge { .. }
            | ErrorKind::NotTheApi { .. }
            | ErrorKind::LeaseLost => RetryClass::Permanent,
            ErrorKind::Http { status } => match codes::http_status(*status) {
                codes::StatusClass::Transient => RetryClass::Backoff,
                codes::StatusClass::NotTheApi => RetryClass::Permanent,
            },
            ErrorKind::Transport { .. } | ErrorKind::BadResponse { .. } => RetryClass::Backoff,
        }
    }

    /// How the connection could not be made, when the request never reached the service.
    pub fn connect_failure(&self) -> Option<ConnectFailure> {
        match self.kind {
            ErrorKind::Transport { connect, .. } => connect,
            _ => None,
        }
    }

    /// What answered, when it is not the REST API: the status, the content type and
    /// the start of the body, escaped as plain text and cut short.
    pub fn answer(&self) -> Option<String> {
        const SHOWN: usize = 120;
        let ErrorKind::NotTheApi { status, content_type, body } = &self.kind else {
            return None;
        };
        let mut answer = format!("HTTP {status}");
        if let Some(content_type) = content_type {
            answer.push_str(", ");
            answer.push_str(&crate::escape::text(content_type));
        }
        if body.is_empty() {
            answer.push_str(", an empty body");
        } else {
            let quoted = crate::escape::quoted(body);
            answer.push_str(", ");
            if quoted.len() > SHOWN {
                answer.push_str(crate::escape::cut(&quoted, SHOWN));
                answer.push_str("\"…");
            } else {
                answer.push_str(&quoted);
            }
        }
        Some(answer)
    }

    /// Whether this failure is about the whole app rather than the group, and why.
    /// The codes of credentials, account, app and data centre always are, and so is
    /// an answer that cannot come from the REST API. A failure
    /// to connect is only while `reached` is false, i.e. nothing in this run has
    /// reached the host yet: once something has, it is a fault of the moment that
    /// the retries of each group handle.
    pub fn app_wide(&self, reached: bool) -> Option<AppWide> {
        match &self.kind {
            ErrorKind::Api { code, .. } => codes::app_wide(*code),
            ErrorKind::NotTheApi { .. } => Some(AppWide::NotTheApi),
            ErrorKind::Transport { connect: Some(failure), .. } if !reached => Some(failure.app_wide()),
            _ => None,
        }
    }

    /// Whether the server is throttling us.
    pub fn is_throttle(&self) -> bool {
        match &self.kind {
            ErrorKind::Api { code, .. } => codes::lookup(*code).is_some_and(|c| c.throttle),
            ErrorKind::Http { status } => *status == 429,
            _ => false,
        }
    }

    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match &self.kind {
            ErrorKind::Api { code, .. } => codes::lookup(*code).map(|c| c.hint),
            ErrorKind::Http { .. } | ErrorKind::Transport { .. } => {
                Some("check the network and the endpoint; grattr retried with backoff")
            }
            ErrorKind::BadResponse { .. } | ErrorKind::TooLarge { .. } | ErrorKind::NotTheApi { .. } => {
                Some("check endpoint: something other than the Chat REST API answered")
            }
            ErrorKind::Refused { .. } => Some("a bug in grattr: report it with the command that was run"),
            ErrorKind::LeaseLost => Some("another writer may hold the record now; run again to finish"),
        }
    }

    pub(super) fn min_wait(&self) -> Duration {
        self.code().and_then(codes::lookup).map_or(Duration::ZERO, |c| c.min_wait)
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.operation)?;
        match &self.kind {
            ErrorKind::Api { code, info } => {
                let meaning = codes::lookup(*code).map_or("undocumented error", |c| c.meaning);
                write!(f, "{meaning} [{code}]")?;
                if !info.is_empty() {
                    write!(f, " ({info})")?;
                }
            }
            ErrorKind::Http { status } => write!(f, "HTTP {status}")?,
            ErrorKind::Transport { message, .. } => write!(f, "{message}")?,
            ErrorKind::BadResponse { message } => write!(f, "unexpected answer: {message}")?,
            ErrorKind::NotTheApi { .. } => {
                write!(f, "not the Chat REST API: {}", self.answer().unwrap_or_default())?;
            }
            ErrorKind::TooLarge { limit } => {
                write!(f, "unexpected answer: larger than {limit} bytes, far more than any REST API answer")?;
            }
            ErrorKind::Refused { reason } => write!(f, "not sent: {reason}")?,
            ErrorKind::LeaseLost => write!(f, "not sent: the writer's lease on the record was lost")?,
        }
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_classify_and_read_well() {
        let e = |kind| ApiError { operation: Operation::SetGroupAttr, kind, attempts: 3 };
        let throttled = e(ErrorKind::Api { code: 10049, info: "too fast".into() });
        assert_eq!(throttled.retry_class(), RetryClass::Backoff);
        assert!(throttled.is_throttle());
        assert_eq!(throttled.min_wait(), Duration::from_secs(1));
        assert_eq!(
            throttled.to_string(),
            "set_group_attr: per-group write frequency exceeded (5/s) [10049] (too fast) after 3 attempts"
        );
        let unknown = e(ErrorKind::Api { code: 12345, info: "what".into() });
        assert_eq!(unknown.retry_class(), RetryClass::Permanent);
        assert_eq!(unknown.to_string(), "set_group_attr: undocumented error [12345] (what) after 3 attempts");
        assert_eq!(e(ErrorKind::Http { status: 502 }).retry_class(), RetryClass::Backoff);
        assert_eq!(e(ErrorKind::Http { status: 408 }).retry_class(), RetryClass::Backoff);
        assert_eq!(e(ErrorKind::Http { status: 429 }).retry_class(), RetryClass::Backoff);
        assert_eq!(e(ErrorKind::Http { status: 404 }).retry_class(), RetryClass::Permanent);
        let impostor = e(ErrorKind::NotTheApi {
            status: 501,
            content_type: Some("text/html".into()),
            body: format!("<html>\u{1b}[2J{}", "x".repeat(300)),
        });
        assert_eq!(impostor.retry_class(), RetryClass::Permanent);
        let shown = impostor.to_string();
        assert!(shown.starts_with(r#"set_group_attr: not the Chat REST API: HTTP 501, text/html, "<html>\u001b[2Jxx"#));
        assert!(shown.ends_with(r#"xx"… after 3 attempts"#), "{shown}");
        assert!(shown.len() < 220, "cut short: {shown}");
        assert_eq!(e(ErrorKind::Transport { message: "x".into(), connect: None }).retry_class(), RetryClass::Backoff);
        assert_eq!(e(ErrorKind::Api { code: 70001, info: String::new() }).retry_class(), RetryClass::RenewUserSig);
    }

    #[test]
    fn app_wide_failures_are_told_from_per_group_ones() {
        let e = |kind| ApiError { operation: Operation::SetGroupAttr, kind, attempts: 1 };
        let api = |code| e(ErrorKind::Api { code, info: String::new() });
        for (code, reason) in [
            (70009, AppWide::Credentials),
            (70001, AppWide::Credentials),
            (70050, AppWide::Credentials),
            (70013, AppWide::Account),
            (70014, AppWide::App),
            (70016, AppWide::Region),
            (70020, AppWide::Region),
        ] {
            assert_eq!(api(code).app_wide(true), Some(reason), "{code}");
        }
        for code in [10002, 10004, 10007, 10010, 10015, 10049, 60007, 60008, 99999] {
            assert_eq!(api(code).app_wide(false), None, "{code}");
        }
        let refused = e(ErrorKind::Transport { message: "x".into(), connect: Some(ConnectFailure::Refused) });
        assert_eq!(refused.app_wide(false), Some(AppWide::Refused), "nothing reached the host yet");
        assert_eq!(refused.app_wide(true), None, "the host answered before: a fault of the moment");
        let dropped = e(ErrorKind::Transport { message: "x".into(), connect: None });
        assert_eq!(dropped.app_wide(false), None, "the request left: the host is there");
        assert_eq!(e(ErrorKind::Http { status: 502 }).app_wide(false), None);
        let impostor = e(ErrorKind::NotTheApi { status: 200, content_type: None, body: String::new() });
        assert_eq!(impostor.app_wide(true), Some(AppWide::NotTheApi), "whatever answered before");
        assert!(impostor.to_string().ends_with("HTTP 200, an empty body"), "{impostor}");
    }
}
