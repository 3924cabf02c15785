//! The response envelope of SPEC §3 and the one table that maps each `message_action` to its
//! HTTP status. Every binary and every test uses these definitions; nothing restates them.

use serde::{Deserialize, Serialize};

/// Every `message_action` the API can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MessageAction {
    Success,
    Accepted,
    InvalidPayloadFormat,
    InvalidPayloadKey,
    InvalidMandatory,
    InvalidValue,
    TenorNotAllowed,
    InsufficientLimit,
    UserNotActive,
    Overpayment,
    RefundExceeds,
    UserOverdue,
    InvalidSignature,
    Forbidden,
    NotFound,
    UserNotFound,
    ContractNotFound,
    MethodNotAllowed,
    ConflictExternalId,
    DuplicateExternalId,
    DuplicateNik,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    LimitBelowUsed,
}

impl MessageAction {
    pub const ALL: [MessageAction; 25] = [
        Self::Success,
        Self::Accepted,
        Self::InvalidPayloadFormat,
        Self::InvalidPayloadKey,
        Self::InvalidMandatory,
        Self::InvalidValue,
        Self::TenorNotAllowed,
        Self::InsufficientLimit,
        Self::UserNotActive,
        Self::Overpayment,
        Self::RefundExceeds,
        Self::UserOverdue,
        Self::InvalidSignature,
        Self::Forbidden,
        Self::NotFound,
        Self::UserNotFound,
        Self::ContractNotFound,
        Self::MethodNotAllowed,
        Self::ConflictExternalId,
        Self::DuplicateExternalId,
        Self::DuplicateNik,
        Self::PayloadTooLarge,
        Self::RateLimited,
        Self::ServiceUnavailable,
        Self::LimitBelowUsed,
    ];

    /// The HTTP status of SPEC §3's table. `SUCCESS` is 200 here; creations answer 201.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Success => 200,
            Self::Accepted => 202,
            Self::InvalidPayloadFormat
            | Self::InvalidPayloadKey
            | Self::InvalidMandatory
            | Self::InvalidValue
            | Self::TenorNotAllowed
            | Self::InsufficientLimit
            | Self::UserNotActive
            | Self::Overpayment
            | Self::RefundExceeds
            | Self::LimitBelowUsed
            | Self::UserOverdue => 400,
            Self::InvalidSignature => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::UserNotFound | Self::ContractNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::ConflictExternalId | Self::DuplicateExternalId | Self::DuplicateNik => 409,
            Self::PayloadTooLarge => 413,
            Self::RateLimited => 429,
            Self::ServiceUnavailable => 503,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "SUCCESS",
            Self::Accepted => "ACCEPTED",
            Self::InvalidPayloadFormat => "INVALID_PAYLOAD_FORMAT",
            Self::InvalidPayloadKey => "INVALID_PAYLOAD_KEY",
            Self::InvalidMandatory => "INVALID_MANDATORY",
            Self::InvalidValue => "INVALID_VALUE",
            Self::TenorNotAllowed => "TENOR_NOT_ALLOWED",
            Self::InsufficientLimit => "INSUFFICIENT_LIMIT",
            Self::UserNotActive => "USER_NOT_ACTIVE",
            Self::Overpayment => "OVERPAYMENT",
            Self::RefundExceeds => "REFUND_EXCEEDS",
            Self::UserOverdue => "USER_OVERDUE",
            Self::InvalidSignature => "INVALID_SIGNATURE",
            Self::Forbidden => "FORBIDDEN",
            Self::NotFound => "NOT_FOUND",
            Self::UserNotFound => "USER_NOT_FOUND",
            Self::ContractNotFound => "CONTRACT_NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Self::ConflictExternalId => "CONFLICT_EXTERNAL_ID",
            Self::DuplicateExternalId => "DUPLICATE_EXTERNAL_ID",
            Self::DuplicateNik => "DUPLICATE_NIK",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::RateLimited => "RATE_LIMITED",
            Self::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            Self::LimitBelowUsed => "LIMIT_BELOW_USED",
        }
    }
}

/// The reasons a worker may reject an asynchronous call with (SPEC §6, `GET /status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectReason {
    InsufficientLimit,
    UserNotFound,
    UserNotActive,
    DuplicateExternalId,
    Overpayment,
    ContractNotFound,
    RefundExceeds,
    UserOverdue,
}

impl RejectReason {
    pub fn action(self) -> MessageAction {
        match self {
            Self::InsufficientLimit => MessageAction::InsufficientLimit,
            Self::UserNotFound => MessageAction::UserNotFound,
            Self::UserNotActive => MessageAction::UserNotActive,
            Self::DuplicateExternalId => MessageAction::DuplicateExternalId,
            Self::Overpayment => MessageAction::Overpayment,
            Self::ContractNotFound => MessageAction::ContractNotFound,
            Self::RefundExceeds => MessageAction::RefundExceeds,
            Self::UserOverdue => MessageAction::UserOverdue,
        }
    }

    pub fn as_str(self) -> &'static str {
        self.action().as_str()
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::InsufficientLimit,
            Self::UserNotFound,
            Self::UserNotActive,
            Self::DuplicateExternalId,
            Self::Overpayment,
            Self::ContractNotFound,
            Self::RefundExceeds,
            Self::UserOverdue,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// `{"message_action": …, "message_data": …, "api_call_id": …}`
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope {
    pub message_action: MessageAction,
    pub message_data: serde_json::Value,
    pub api_call_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_serializes_to_its_name() {
        for action in MessageAction::ALL {
            let json = serde_json::to_value(action).expect("serializable");
            assert_eq!(json, serde_json::Value::String(action.as_str().to_owned()));
        }
    }

    #[test]
    fn error_map_matches_spec_table() {
        use MessageAction::*;
        let expected = [
            (InvalidPayloadFormat, 400),
            (InvalidPayloadKey, 400),
            (InvalidMandatory, 400),
            (InvalidValue, 400),
            (TenorNotAllowed, 400),
            (InsufficientLimit, 400),
            (UserNotActive, 400),
            (Overpayment, 400),
            (RefundExceeds, 400),
            (LimitBelowUsed, 400),
            (UserOverdue, 400),
            (InvalidSignature, 401),
            (Forbidden, 403),
            (NotFound, 404),
            (UserNotFound, 404),
            (ContractNotFound, 404),
            (MethodNotAllowed, 405),
            (ConflictExternalId, 409),
            (DuplicateExternalId, 409),
            (DuplicateNik, 409),
            (PayloadTooLarge, 413),
            (RateLimited, 429),
            (ServiceUnavailable, 503),
        ];
        for (action, status) in expected {
            assert_eq!(action.http_status(), status, "{action:?}");
        }
    }

    #[test]
    fn reject_reasons_round_trip() {
        for r in [
            RejectReason::InsufficientLimit,
            RejectReason::UserNotFound,
            RejectReason::UserNotActive,
            RejectReason::DuplicateExternalId,
            RejectReason::Overpayment,
            RejectReason::ContractNotFound,
            RejectReason::RefundExceeds,
            RejectReason::UserOverdue,
        ] {
            assert_eq!(RejectReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RejectReason::parse("NOPE"), None);
    }
}
