//! The status object of an asynchronous call (SPEC §6, `GET /status`).

use crate::envelope::RejectReason;
use crate::messages::CallType;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallState {
    Pending,
    Approved,
    Rejected,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Pending => "PENDING",
            CallState::Approved => "APPROVED",
            CallState::Rejected => "REJECTED",
        }
    }

    pub fn parse(s: &str) -> Option<CallState> {
        match s {
            "PENDING" => Some(CallState::Pending),
            "APPROVED" => Some(CallState::Approved),
            "REJECTED" => Some(CallState::Rejected),
            _ => None,
        }
    }
}

/// The outcome of an asynchronous call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CallStatus {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::ApiCallId))]
    pub api_call_id: String,
    #[serde(rename = "type")]
    pub call_type: CallType,
    pub status: CallState,
    /// Why it was rejected; null unless `REJECTED`.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub reason: Option<RejectReason>,
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub created_at: DateTime<Utc>,
    /// Null while `PENDING`.
    #[serde(with = "rfc3339_opt")]
    #[cfg_attr(feature = "openapi", schema(required = true, value_type = Option<crate::openapi::Instant>))]
    pub completed_at: Option<DateTime<Utc>>,
    /// Null unless decided with a result.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub result: Option<ResultJson>,
}

/// The result of a call rejected as `DUPLICATE_EXTERNAL_ID`: the call that used the id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DuplicateOf {
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::ApiCallId))]
    pub original_api_call_id: String,
}

/// Named `CallResult` in the document: an approved transaction's contract, an approved
/// payment's bill, an approved refund, or the original call of a `DUPLICATE_EXTERNAL_ID`
/// rejection.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ResultJson {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::openapi::schema_ref;
        utoipa::openapi::schema::OneOfBuilder::new()
            .description(Some(
                "An approved transaction's contract, an approved payment's bill, an approved refund, or\nthe original call of a `DUPLICATE_EXTERNAL_ID` rejection.",
            ))
            .item(schema_ref::<crate::db::contracts::ContractView>())
            .item(schema_ref::<crate::db::contracts::BillView>())
            .item(schema_ref::<crate::db::contracts::RefundView>())
            .item(schema_ref::<DuplicateOf>())
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ResultJson {
    fn name() -> std::borrow::Cow<'static, str> {
        "CallResult".into()
    }
}

/// A decided call's `result` (the contract, the bill or the refund), serialized once by the worker that
/// decided it. The outcome row stores these bytes, Redis caches them and waiting ingresses
/// receive them inside the status: no tree of values is built to be serialized again on each
/// of those paths (serde_json's `Value` and its re-serialization were the worker's largest
/// CPU cost after the allocator).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ResultJson(Box<serde_json::value::RawValue>);

impl ResultJson {
    /// Serializes `value` once.
    pub fn of<T: Serialize + ?Sized>(value: &T) -> Result<ResultJson, serde_json::Error> {
        serde_json::value::to_raw_value(value).map(ResultJson)
    }

    /// A stored result, checked to be JSON.
    pub(crate) fn from_stored(json: String) -> Result<ResultJson, serde_json::Error> {
        serde_json::value::RawValue::from_string(json).map(ResultJson)
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The result as a value, to look inside it.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

/// Equal when they hold the same JSON value, whatever the key order or spacing.
impl PartialEq for ResultJson {
    fn eq(&self, other: &ResultJson) -> bool {
        self.to_value() == other.to_value()
    }
}

impl CallStatus {
    pub fn pending(
        api_call_id: &str,
        call_type: CallType,
        created_at: DateTime<Utc>,
    ) -> CallStatus {
        CallStatus {
            api_call_id: api_call_id.to_owned(),
            call_type,
            status: CallState::Pending,
            reason: None,
            created_at,
            completed_at: None,
            result: None,
        }
    }

    pub fn is_final(&self) -> bool {
        self.status != CallState::Pending
    }
}

/// RFC 3339 in UTC with a `Z` and microseconds, the format of every instant we answer with.
pub fn format_instant(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_instant(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

pub(crate) mod rfc3339_opt {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_instant(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(serde::de::Error::custom)
        })
        .transpose()
    }
}
