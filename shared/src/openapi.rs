//! What the OpenAPI document says of the wire formats defined here (behind the `openapi`
//! feature, so only the ingress builds utoipa): the string shapes of SPEC (money, rates,
//! instants, dates, api call ids) and how decimals are read from a request. The types that
//! travel derive or implement `utoipa::ToSchema` where they are defined.

use serde_json::json;
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

pub fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// `#/components/schemas/{T's name}`.
pub fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    Ref::from_schema_name(T::name()).into()
}

/// A string whose shape SPEC fixes.
pub(crate) fn shaped_string(
    description: &str,
    pattern: &str,
    example: &str,
    format: Option<KnownFormat>,
) -> RefOr<Schema> {
    string()
        .description(Some(description))
        .pattern(Some(pattern))
        .format(format.map(SchemaFormat::KnownFormat))
        .examples([json!(example)])
        .into()
}

/// A schema for a value whose Rust type is a plain `String` or an instant.
macro_rules! string_schema {
    ($(#[doc = $doc:literal])+ $name:ident, pattern = $pattern:literal, example = $example:literal $(, format = $format:ident)?) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                #[allow(unused_mut, unused_assignments)]
                let mut format = None;
                $(format = Some(KnownFormat::$format);)?
                shaped_string(concat!($($doc),+).trim(), $pattern, $example, format)
            }
        }

        impl ToSchema for $name {}
    };
}

string_schema! {
    /// `API_CALL_` and a time-ordered id (UUIDv7), unique per request.
    ApiCallId, pattern = "^API_CALL_[0-9A-Za-z]+$", example = "API_CALL_0190f5b3c1d27a8e9b2c3d4e5f601234"
}
string_schema! {
    /// An RFC 3339 instant in UTC with a `Z`.
    Instant, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?Z$", example = "2026-01-31T07:15:00.123456Z", format = DateTime
}
string_schema! {
    /// A calendar date, `YYYY-MM-DD`.
    Date, pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "2026-02-28", format = Date
}

/// A decimal in a request: a JSON number (any notation) or a decimal string.
fn decimal_input(description: &str, max: Option<f64>, example: f64) -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(0))
                .maximum(max),
        )
        .item(string().pattern(Some(r"^-?[0-9]+(\.[0-9]+)?$")))
        .description(Some(description))
        .examples([json!(example)])
        .into()
}

/// Money in a request (`Money::parse_json`): at most 2 decimals (judged by value, `1.000` is
/// fine), within 0 … 999,999,999,999,999,999.99, else `400 INVALID_VALUE`.
pub struct MoneyInput;

impl PartialSchema for MoneyInput {
    fn schema() -> RefOr<Schema> {
        decimal_input(
            "Money: a JSON number or a decimal string `-?[0-9]+(.[0-9]+)?`, at most 2 decimals \
             (judged by value), within 0 … 999999999999999999.99; otherwise `INVALID_VALUE`.",
            None,
            1000.0,
        )
    }
}

impl ToSchema for MoneyInput {}

/// `bunga_persen` in a request (`Rate::parse_json`).
pub struct RateInput;

impl PartialSchema for RateInput {
    fn schema() -> RefOr<Schema> {
        decimal_input(
            "A flat monthly interest rate in percent: a JSON number or a decimal string, \
             0 … 100 with at most 4 decimals; otherwise `INVALID_VALUE`.",
            Some(100.0),
            2.5,
        )
    }
}

impl ToSchema for RateInput {}
