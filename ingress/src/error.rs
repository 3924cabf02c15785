//! The one error type of the HTTP boundary, mapped to SPEC §3's envelope.

use serde_json::{Value, json};
use shared::envelope::MessageAction;

/// An answer that is not a success: its action (which fixes the HTTP status), what
/// `message_data` says, and `Retry-After` where it applies.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub action: MessageAction,
    pub data: Value,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(action: MessageAction, message: impl Into<String>) -> ApiError {
        ApiError {
            action,
            data: Value::String(message.into()),
            retry_after: None,
        }
    }

    pub fn with_data(action: MessageAction, data: Value) -> ApiError {
        ApiError {
            action,
            data,
            retry_after: None,
        }
    }

    pub fn signature(message: impl Into<String>) -> ApiError {
        ApiError::new(MessageAction::InvalidSignature, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(MessageAction::NotFound, "not found")
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            MessageAction::Forbidden,
            "this key's role may not call this endpoint",
        )
    }

    pub fn invalid_value(field: &str, why: impl std::fmt::Display) -> ApiError {
        ApiError::new(MessageAction::InvalidValue, format!("`{field}` {why}"))
    }

    pub fn mandatory(field: &str) -> ApiError {
        ApiError::new(
            MessageAction::InvalidMandatory,
            format!("`{field}` is mandatory"),
        )
    }

    pub fn format(why: impl Into<String>) -> ApiError {
        ApiError::new(MessageAction::InvalidPayloadFormat, why)
    }

    /// A dependency is down. The cause goes to the log, not to the client.
    pub fn unavailable(cause: &dyn std::fmt::Display) -> ApiError {
        tracing::warn!(error = %cause, "answering 503");
        ApiError {
            action: MessageAction::ServiceUnavailable,
            data: json!("a dependency is unavailable; retry with the same X-External-Id"),
            retry_after: Some(1),
        }
    }

    /// A bug (a frame or a check missing, a task that died): 503, retry is safe. The cause
    /// goes to the log.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError {
            action: MessageAction::ServiceUnavailable,
            data: json!("internal error; retry with the same X-External-Id"),
            retry_after: None,
        }
    }

    pub fn status(&self) -> u16 {
        self.action.http_status()
    }
}

impl From<shared::json::BodyError> for ApiError {
    fn from(e: shared::json::BodyError) -> Self {
        use shared::json::BodyError;
        match e {
            BodyError::Format(m) => ApiError::format(m),
            BodyError::UnknownKey(k) => ApiError::new(
                MessageAction::InvalidPayloadKey,
                format!("unknown field `{k}`"),
            ),
            BodyError::Missing(k) => ApiError::mandatory(&k),
        }
    }
}

impl From<shared::db::DbError> for ApiError {
    fn from(e: shared::db::DbError) -> Self {
        ApiError::unavailable(&e)
    }
}

impl From<shared::cache::CacheError> for ApiError {
    fn from(e: shared::cache::CacheError) -> Self {
        ApiError::unavailable(&e)
    }
}
