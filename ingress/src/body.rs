//! The body as a typed extractor (SPEC §3: after the role and `X-External-Id`): one strict
//! JSON object with exactly the type's fields, then each field parsed in the order the SPEC
//! lists them. Each parser names its field in the error.

use crate::error::ApiError;
use crate::verify::SignedBody;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use shared::envelope::MessageAction;
use shared::json::{JsonObject, is_json_content_type};
use shared::money::{DecimalError, Money, Rate};

/// A request body type: its fields (no others), which of them are mandatory (all, unless
/// the type says otherwise) and how each is parsed.
pub(crate) trait FromBody: Sized {
    const FIELDS: &'static [&'static str];
    const MANDATORY: &'static [&'static str] = Self::FIELDS;

    fn from_body(obj: &JsonObject<'_>) -> Result<Self, ApiError>;
}

/// The body, parsed as `T` (unknown field → INVALID_PAYLOAD_KEY, missing or null →
/// INVALID_MANDATORY, a wrong value → INVALID_VALUE or the value's own code).
pub(crate) struct Body<T>(pub T);

impl<S: Send + Sync, T: FromBody> FromRequestParts<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Body<T>, ApiError> {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        if !is_json_content_type(content_type) {
            return Err(ApiError::format("Content-Type must be application/json"));
        }
        let SignedBody(bytes) = crate::pipeline::set_by_a_layer(parts, "the signed body")?;
        let obj = JsonObject::parse(&bytes)?;
        obj.check_keys_with(T::FIELDS, T::MANDATORY)?;
        T::from_body(&obj).map(Body)
    }
}

fn raw<'a>(obj: &JsonObject<'a>, field: &str) -> Result<&'a str, ApiError> {
    obj.get(field).ok_or_else(|| ApiError::mandatory(field))
}

/// A string of `min..=max` characters with no control characters and not only blanks.
pub fn text(obj: &JsonObject<'_>, field: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let s = obj
        .get_str(field)
        .ok_or_else(|| ApiError::invalid_value(field, "must be a string"))?;
    let n = s.chars().count();
    if n < min || n > max {
        return Err(ApiError::invalid_value(
            field,
            format!("must be {min}-{max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::invalid_value(
            field,
            "must not contain control characters",
        ));
    }
    if s.trim().is_empty() {
        return Err(ApiError::invalid_value(field, "must not be blank"));
    }
    Ok(s)
}

fn decimal_error(field: &str, e: DecimalError) -> ApiError {
    match e {
        DecimalError::NotANumber => {
            ApiError::invalid_value(field, "must be a number or a decimal string")
        }
        DecimalError::TooPrecise => ApiError::invalid_value(field, "has too many decimal places"),
        DecimalError::OutOfRange => ApiError::invalid_value(field, "is out of range"),
    }
}

/// Money: 0 ..= 999,999,999,999,999,999.99 with at most 2 decimals.
pub fn money(obj: &JsonObject<'_>, field: &str) -> Result<Money, ApiError> {
    Money::parse_json(raw(obj, field)?).map_err(|e| decimal_error(field, e))
}

/// Money strictly above zero.
pub fn positive_money(obj: &JsonObject<'_>, field: &str) -> Result<Money, ApiError> {
    let m = money(obj, field)?;
    if m.is_zero() {
        return Err(ApiError::invalid_value(field, "must be greater than 0"));
    }
    Ok(m)
}

pub fn rate(obj: &JsonObject<'_>, field: &str) -> Result<Rate, ApiError> {
    Rate::parse_json(raw(obj, field)?).map_err(|e| match e {
        DecimalError::OutOfRange => ApiError::invalid_value(field, "must be between 0 and 100"),
        DecimalError::TooPrecise => {
            ApiError::invalid_value(field, "has more than 4 decimal places")
        }
        other => decimal_error(field, other),
    })
}

pub fn tenor(obj: &JsonObject<'_>, field: &str) -> Result<shared::contract::Tenor, ApiError> {
    use shared::contract::{Tenor, TenorError};
    Tenor::parse_json(raw(obj, field)?).map_err(|e| match e {
        TenorError::NotAllowed => ApiError::new(
            MessageAction::TenorNotAllowed,
            "`tenor` must be 1, 2, 3 or 6",
        ),
        TenorError::NotAnInteger => ApiError::invalid_value(field, "must be an integer"),
    })
}

/// An `https` URL of at most 2048 characters, with a host, and no blanks. Never fetched.
pub fn https_url(obj: &JsonObject<'_>, field: &str) -> Result<String, ApiError> {
    let s = obj
        .get_str(field)
        .ok_or_else(|| ApiError::invalid_value(field, "must be a string"))?;
    let bad = || ApiError::invalid_value(field, "must be an https URL of at most 2048 characters");
    if s.len() > 2048 || !s.is_ascii() || s.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad());
    }
    let rest = s
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("https://"))
        .map(|_| &s[8..])
        .ok_or_else(bad)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit('@').next().unwrap_or("");
    let host = host.split(':').next().unwrap_or("");
    if host.is_empty() || authority.contains('@') {
        return Err(bad());
    }
    Ok(s)
}
