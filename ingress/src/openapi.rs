//! The OpenAPI 3.1 description of the API, served at `/openapi.json`, and its docs page.
//!
//! Each operation is described by the `#[utoipa::path]` annotation on its handler in
//! `routes/`, and the route table adds it with its route. Each request and response type
//! derives its schema where it is defined (in `shared` behind its `openapi` feature, or beside
//! its handler). This module holds what the operations share: the description, the signature
//! as security schemes, the envelope around each answer, the reusable error responses, and
//! the headers (`X-External-Id`, `Prefer`). The API tests check real responses against the
//! schemas, and that the served document is the committed `openapi.json`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

use crate::claims::ConflictData;
use crate::routes::admin::{
    CreateKeyRequest, DeadLetters, KeysList, Overview, ReplayRequest, Replayed, Revoked,
    RotateKeyRequest, SetRateRequest,
};
use crate::routes::health::{Health, HealthState, Readiness};
use crate::routes::listings::{BillingItem, BillingsPage, BillsPage, LimitChangesPage};
use crate::routes::reports::SettlementPage;
use crate::routes::submit::{
    Accepted, PaymentRequest, PendingState, RefundRequest, TransactionRequest,
};
use crate::routes::users::{CreateUserRequest, SetLimitsRequest, UserLimits, UserStatusRequest};
use crate::routes::webhooks::{DeliveriesPage, WebhookDeleted, WebhookRequest, WebhookView};
use shared::amqp::QueueCounts;
use shared::contract::{Allocation, ContractStatus, InstallmentStatus, StatusBayar, Tenor};
use shared::db::activity::Activity;
use shared::db::cob::BusinessDate;
use shared::db::contracts::{BillView, ContractView, InstallmentView, RefundView};
use shared::db::keys::{IssuedKey, KeyInfo, RotatedKey};
use shared::db::limit_changes::LimitChangeView;
use shared::db::settlement::{Entry, EntryType, Totals, TypeTotal};
use shared::db::users::{LimitPair, LimitsMap, UserStatus, UserView};
use shared::db::webhooks::{AttemptView, Delivery};
use shared::dlq::DeadLetter;
use shared::envelope::RejectReason;
use shared::messages::CallType;
use shared::money::{Money, Rate};
use shared::openapi::{ApiCallId, Date, Instant, MoneyInput, RateInput, schema_ref, string};
use shared::status::{CallState, CallStatus, DuplicateOf, ResultJson};
use shared::webhooks::{DeliveryStatus, EventType};

const DESCRIPTION: &str = r#"Buy-now-pay-later transactions against per-tenor credit limits.

**Signatures.** Every endpoint except `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and
the docs page requires the headers `X-Client-Id`, `X-Timestamp` (unix seconds, within 300 s of
the server clock) and `X-Signature`, the lowercase hex of HMAC-SHA256(secret, string_to_sign),
where string_to_sign is these five lines joined by `\n` (no trailing newline):

```
METHOD
PATH_AND_QUERY        exactly as sent
TIMESTAMP             the X-Timestamp value
EXTERNAL_ID           the X-External-Id value, or empty when absent
BODY_SHA256           lowercase hex SHA-256 of the raw body bytes
```

Test vector: secret `demo-secret-please-rotate`, `POST /transaction`, timestamp `1700000000`,
external id `ORDER-0001`, body
`{"user_id":"USR_01","otr":1000,"admin_fee":100,"harga_aset":900,"bunga_persen":2.5,"tenor":3,"nama_aset":"Kulkas 2 Pintu"}`
→ signature `071311ecd312ec92be58d53da9aa93048e25d1ecefe60a3539a1acff2722afe0`.

**Envelope.** Every answer except `/metrics`, `/openapi.json` and the docs page is
`{"message_action", "message_data", "api_call_id"}`; the api call id is also in the
`X-Api-Call-Id` header.

**Order of checks**, the first failing one answers: body size (413) → signature (401) → rate
limit (429) → route (404 / 405) → role (403) → `X-External-Id` (400) → body format, keys,
mandatory fields, values (400) → external id claim (409) → resources and business rules.

**Asynchronous calls.** `POST /transaction`, `POST /payment` and `POST /refund` answer `202`
with `Location` and `Retry-After`; poll `GET /status/{api_call_id}`, or find the call by its
external id with `GET /status?external_id=…`. With `Prefer: wait=N` (N clamped to 30) the
request is held up to N seconds for the outcome.

**Idempotency.** `X-External-Id` is claimed per (merchant, endpoint) once a request passes the
signature, role and body checks; later uses get `409 CONFLICT_EXTERNAL_ID`. A `503` releases
the claim: retrying with the same external id is always safe.

**Money** is sent as a JSON number or a decimal string (at most 2 decimals, judged by value)
and returned as a string with exactly 2 decimals; `bunga_persen` with 4."#;

#[derive(OpenApi)]
#[openapi(
    info(title = "XYZ MultiFinance engine", description = DESCRIPTION),
    components(
        schemas(
            ApiCallId, Money, Rate, Instant, Date, MoneyInput, RateInput, Tenor,
            LimitPair, LimitsMap, UserStatus, UserView, UserLimits, InstallmentStatus,
            InstallmentView, BillingItem, ContractStatus, ContractView, Allocation, StatusBayar,
            BillView, RefundView, BusinessDate,
            CallType, CallState, RejectReason, DuplicateOf, ResultJson, CallStatus,
            BillingsPage, BillsPage, LimitChangeView, LimitChangesPage, SettlementPage, Entry, EntryType, Totals, TypeTotal,
            SettlementEnvelope, PendingState, Accepted, ConflictData, HealthState,
            Health, Readiness, OpenApiDocument,
            CreateUserRequest, UserStatusRequest, SetLimitsRequest, TransactionRequest,
            PaymentRequest, RefundRequest,
            HealthEnvelope, ReadyEnvelope, NotReadyEnvelope, UserEnvelope, LimitsEnvelope,
            BillingsEnvelope, BillsEnvelope, StatusEnvelope, ContractEnvelope, BusinessDateEnvelope,
            AcceptedEnvelope,
            ApprovedEnvelope, ValidationErrorEnvelope, SignatureErrorEnvelope, ForbiddenEnvelope,
            NotFoundEnvelope, PayloadTooLargeEnvelope, RateLimitedEnvelope, UnavailableEnvelope,
            ConflictEnvelope, DuplicateNikEnvelope, DuplicateExternalIdEnvelope,
            TransactionRejectedEnvelope, PaymentRejectedEnvelope, RefundRejectedEnvelope,
            UserNotFoundEnvelope,
            ContractNotFoundEnvelope, CreateUserConflict, TransactionBadRequest,
            PaymentBadRequest, RefundBadRequest, SubmitConflict, LimitChangesEnvelope,
            LimitBelowUsedEnvelope,
            SetLimitsBadRequest,
            EventType, DeliveryStatus, AttemptView, Delivery, WebhookRequest, WebhookView,
            WebhookDeleted, DeliveriesPage, WebhookEnvelope, WebhookDeletedEnvelope,
            DeliveriesEnvelope, DeliveryEnvelope,
            shared::db::keys::Role, KeyInfo, KeysList, IssuedKey, RotatedKey, Revoked, DeadLetter,
            DeadLetters, Replayed, QueueCounts, Activity, Overview, CreateKeyRequest,
            RotateKeyRequest, SetRateRequest, ReplayRequest, KeysEnvelope, KeyEnvelope,
            IssuedKeyEnvelope, RotatedKeyEnvelope, RevokedEnvelope, DeadLettersEnvelope,
            ReplayedEnvelope, OverviewEnvelope,
        ),
        responses(BadRequest, Unauthorized, Forbidden, NotFound, Replay, PayloadTooLarge,
            RateLimited, Unavailable),
    ),
    modifiers(&SignatureScheme, &ExactObjects),
    tags(
        (name = "users", description = "Users, their limits, installments and payments (synchronous)."),
        (name = "transactions", description = "Buy now, pay later (asynchronous)."),
        (name = "payments", description = "Paying installments (asynchronous)."),
        (name = "refunds", description = "Refunds and cancellation (asynchronous)."),
        (name = "calls", description = "Outcomes of asynchronous calls, and contracts."),
        (name = "reports", description = "Settlement: a day's approved calls per merchant (JSON or CSV)."),
        (name = "webhooks", description = "A merchant's webhook endpoint and its deliveries (merchants only)."),
        (name = "operations", description = "Public: health, metrics, this document and its docs page, the operator console page."),
        (name = "admin", description = "Operators: API keys, dead letters, the engine's health (admin only)."),
    ),
)]
pub struct ApiDoc;

/// What the document says besides its paths: the description, the shared components, the
/// signature as security schemes. The route table adds the paths (`routes::router`).
pub(crate) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

static DOCUMENT: OnceLock<String> = OnceLock::new();

/// Completes the route table's document and keeps it as JSON for `/openapi.json` (every
/// router built in this process has the same routes, so the first one's document stands).
pub(crate) fn publish(mut document: utoipa::openapi::OpenApi) {
    ApiCallIdHeader.modify(&mut document);
    DOCUMENT.get_or_init(|| document.to_pretty_json().unwrap_or_default());
}

/// The document as JSON.
pub(crate) fn json() -> &'static str {
    DOCUMENT.get().map_or("{}", String::as_str)
}

/// The names of the three security schemes that together are the signature of SPEC §2.
pub const SECURITY_SCHEMES: [&str; 3] = ["client_id", "timestamp", "signature"];

struct SignatureScheme;

impl Modify for SignatureScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let schemes = [
            (
                "client_id",
                "X-Client-Id",
                "The API key id issued to the caller (`xyzctl keys create`). Part of the \
                 signature: send it with `X-Timestamp` and `X-Signature`.",
            ),
            (
                "timestamp",
                "X-Timestamp",
                "Unix time in seconds, a decimal integer, within 300 s of the server clock. \
                 Part of the signature. On the docs page any value will do: the page sets it.",
            ),
            (
                "signature",
                "X-Signature",
                "Lowercase hex of HMAC-SHA256(secret, string_to_sign), string_to_sign being \
                 `METHOD\\nPATH_AND_QUERY\\nTIMESTAMP\\nEXTERNAL_ID\\nBODY_SHA256` (see the API \
                 description). Missing or malformed headers, an unknown or revoked key, a wrong \
                 signature or a stale timestamp: `401 INVALID_SIGNATURE`. On the docs page, \
                 enter the key's *secret* here: the page computes the signature in the browser \
                 and never sends the secret.",
            ),
        ];
        for (name, header, description) in schemes {
            components.add_security_scheme(
                name,
                SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                    header,
                    description,
                ))),
            );
        }
    }
}

/// Every envelope answer carries its api call id in `X-Api-Call-Id` too.
struct ApiCallIdHeader;

impl Modify for ApiCallIdHeader {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        fn add(response: &mut Response) {
            let is_envelope = response.content.get("application/json").is_some_and(|c| {
                !matches!(c, RefOr::T(c) if matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/OpenApiDocument")))
            });
            if is_envelope {
                response.headers.insert(
                    "X-Api-Call-Id".to_owned(),
                    HeaderBuilder::new()
                        .schema(Some(schema_ref::<ApiCallId>()))
                        .description(Some("The api call id of this request, as in the body."))
                        .build()
                        .into(),
                );
            }
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for response in op.responses.responses.values_mut() {
                    if let RefOr::T(r) = response {
                        add(r);
                    }
                }
            }
        }
        if let Some(components) = openapi.components.as_mut() {
            for response in components.responses.values_mut() {
                if let RefOr::T(r) = response {
                    add(r);
                }
            }
        }
    }
}

/// Answers carry exactly the documented fields. The types read back from storage (a status,
/// an allocation) accept unknown fields, so that a newer worker's data does not break an
/// older ingress; the document still promises no others.
struct ExactObjects;

impl Modify for ExactObjects {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in [CallStatus::name(), Allocation::name()] {
            if let Some(RefOr::T(Schema::Object(object))) =
                components.schemas.get_mut(name.as_ref())
            {
                object.additional_properties = Some(Box::new(
                    utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
                ));
            }
        }
    }
}

/// An OpenAPI 3 document.
pub struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some("An OpenAPI 3 document."))
            .property("openapi", string().pattern(Some(r"^3\.")))
            .required("openapi")
            .property("info", ObjectBuilder::new())
            .required("info")
            .property("paths", ObjectBuilder::new())
            .required("paths")
            .into()
    }
}

impl ToSchema for OpenApiDocument {}

/// `{"message_action", "message_data", "api_call_id"}` with the given actions and data.
fn envelope(description: &str, actions: &[&str], data: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .description(Some(description))
        .property(
            "message_action",
            string().enum_values(Some(actions.iter().copied())),
        )
        .required("message_action")
        .property("message_data", data)
        .required("message_data")
        .property("api_call_id", schema_ref::<ApiCallId>())
        .required("api_call_id")
        .additional_properties(Some(
            utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
        ))
        .into()
}

/// A human-readable message (it names the field or header at fault).
fn text() -> RefOr<Schema> {
    string().into()
}

macro_rules! envelope_schema {
    ($(#[doc = $doc:literal])+ $name:ident, [$($action:literal),+], $data:expr) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                envelope(concat!($($doc),+).trim(), &[$($action),+], $data)
            }
        }

        impl ToSchema for $name {}
    };
}

envelope_schema! {
    /// Liveness.
    HealthEnvelope, ["SUCCESS"], schema_ref::<Health>()
}
envelope_schema! {
    /// Ready: every dependency answers.
    ReadyEnvelope, ["SUCCESS"], schema_ref::<Readiness>()
}
envelope_schema! {
    /// Not ready: a dependency does not answer.
    NotReadyEnvelope, ["SERVICE_UNAVAILABLE"], schema_ref::<Readiness>()
}
envelope_schema! {
    /// A user.
    UserEnvelope, ["SUCCESS"], schema_ref::<UserView>()
}
envelope_schema! {
    /// A user's limits.
    LimitsEnvelope, ["SUCCESS"], schema_ref::<UserLimits>()
}
envelope_schema! {
    /// A page of installments.
    BillingsEnvelope, ["SUCCESS"], schema_ref::<BillingsPage>()
}
envelope_schema! {
    /// A page of payments.
    BillsEnvelope, ["SUCCESS"], schema_ref::<BillsPage>()
}
envelope_schema! {
    /// A page of a user's limit changes.
    LimitChangesEnvelope, ["SUCCESS"], schema_ref::<LimitChangesPage>()
}
envelope_schema! {
    /// A new granted limit is below what is in use (the message names the field); nothing
    /// changed.
    LimitBelowUsedEnvelope, ["LIMIT_BELOW_USED"], text()

}
envelope_schema! {
    /// A page of a day's settlement.
    SettlementEnvelope, ["SUCCESS"], schema_ref::<SettlementPage>()
}
envelope_schema! {
    /// The status of an asynchronous call, whatever its outcome.
    StatusEnvelope, ["SUCCESS"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// A contract as it is now.
    ContractEnvelope, ["SUCCESS"], schema_ref::<ContractView>()
}
envelope_schema! {
    /// The last closed business date.
    BusinessDateEnvelope, ["SUCCESS"], schema_ref::<BusinessDate>()
}
envelope_schema! {
    /// Accepted: the command is queued; poll `status_url`.
    AcceptedEnvelope, ["ACCEPTED"], schema_ref::<Accepted>()
}
envelope_schema! {
    /// Approved within `Prefer: wait`: the status, with the contract, the bill or the refund as
    /// `result`.
    ApprovedEnvelope, ["SUCCESS"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// The request is malformed: not one JSON object, wrong content type or duplicate keys;
    /// an unknown key; a missing field or header; a wrong value (the message names it).
    ValidationErrorEnvelope, ["INVALID_PAYLOAD_FORMAT", "INVALID_PAYLOAD_KEY", "INVALID_MANDATORY", "INVALID_VALUE", "TENOR_NOT_ALLOWED"], text()
}
envelope_schema! {
    /// The signature does not hold (the message says which check failed).
    SignatureErrorEnvelope, ["INVALID_SIGNATURE"], text()
}
envelope_schema! {
    /// This key's role may not call this endpoint.
    ForbiddenEnvelope, ["FORBIDDEN"], text()
}
envelope_schema! {
    /// Unknown route or resource, or not this merchant's.
    NotFoundEnvelope, ["NOT_FOUND"], text()
}
envelope_schema! {
    /// The body is over 65,536 bytes.
    PayloadTooLargeEnvelope, ["PAYLOAD_TOO_LARGE"], text()
}
envelope_schema! {
    /// This key (or, at nginx, this address) sends too fast.
    RateLimitedEnvelope, ["RATE_LIMITED"], text()
}
envelope_schema! {
    /// A dependency is unreachable; nothing was claimed or written.
    UnavailableEnvelope, ["SERVICE_UNAVAILABLE"], text()
}
envelope_schema! {
    /// The external id was already used by this merchant on this endpoint.
    ConflictEnvelope, ["CONFLICT_EXTERNAL_ID"], schema_ref::<ConflictData>()
}
envelope_schema! {
    /// A user with this NIK exists.
    DuplicateNikEnvelope, ["DUPLICATE_NIK"], text()
}
envelope_schema! {
    /// Rejected within `Prefer: wait`: the worker found the external id used.
    DuplicateExternalIdEnvelope, ["DUPLICATE_EXTERNAL_ID"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// Rejected within `Prefer: wait`: the limit of the tenor is too low, the user is locked, or the user has an overdue installment (SPEC §12).
    TransactionRejectedEnvelope, ["INSUFFICIENT_LIMIT", "USER_NOT_ACTIVE", "USER_OVERDUE"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// Rejected within `Prefer: wait`: more than is outstanding.
    PaymentRejectedEnvelope, ["OVERPAYMENT"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// Rejected within `Prefer: wait`: more than is still refundable.
    RefundRejectedEnvelope, ["REFUND_EXCEEDS"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// Rejected within `Prefer: wait`: no such user.
    UserNotFoundEnvelope, ["USER_NOT_FOUND"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// Rejected within `Prefer: wait`: no such contract.
    ContractNotFoundEnvelope, ["CONTRACT_NOT_FOUND"], schema_ref::<CallStatus>()
}
envelope_schema! {
    /// A webhook endpoint (with its secret only when created or rotated).
    WebhookEnvelope, ["SUCCESS"], schema_ref::<WebhookView>()
}
envelope_schema! {
    /// The webhook endpoint is deleted.
    WebhookDeletedEnvelope, ["SUCCESS"], schema_ref::<WebhookDeleted>()
}
envelope_schema! {
    /// A page of webhook events.
    DeliveriesEnvelope, ["SUCCESS"], schema_ref::<DeliveriesPage>()
}
envelope_schema! {
    /// A webhook event and its attempts.
    DeliveryEnvelope, ["SUCCESS"], schema_ref::<Delivery>()
}

envelope_schema! {
    /// Every API key, never a secret.
    KeysEnvelope, ["SUCCESS"], schema_ref::<KeysList>()
}
envelope_schema! {
    /// An API key, never its secret.
    KeyEnvelope, ["SUCCESS"], schema_ref::<KeyInfo>()
}
envelope_schema! {
    /// A key just issued, with its secret (shown only here).
    IssuedKeyEnvelope, ["SUCCESS"], schema_ref::<IssuedKey>()
}
envelope_schema! {
    /// A key's new secret (shown only here).
    RotatedKeyEnvelope, ["SUCCESS"], schema_ref::<RotatedKey>()
}
envelope_schema! {
    /// A key revoked.
    RevokedEnvelope, ["SUCCESS"], schema_ref::<Revoked>()
}
envelope_schema! {
    /// The dead letters.
    DeadLettersEnvelope, ["SUCCESS"], schema_ref::<DeadLetters>()
}
envelope_schema! {
    /// The dead letters replayed.
    ReplayedEnvelope, ["SUCCESS"], schema_ref::<Replayed>()
}
envelope_schema! {
    /// The engine's health.
    OverviewEnvelope, ["SUCCESS"], schema_ref::<Overview>()
}

macro_rules! one_of_schema {
    ($(#[doc = $doc:literal])+ $name:ident, [$($item:ty),+]) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                OneOfBuilder::new()
                    .description(Some(concat!($($doc),+).trim()))
                    $(.item(schema_ref::<$item>()))+
                    .into()
            }
        }

        impl ToSchema for $name {}
    };
}

one_of_schema! {
    /// The external id is used, or a user with this NIK exists.
    CreateUserConflict, [ConflictEnvelope, DuplicateNikEnvelope]
}
one_of_schema! {
    /// Invalid, or rejected within `Prefer: wait`.
    TransactionBadRequest, [ValidationErrorEnvelope, TransactionRejectedEnvelope]
}
one_of_schema! {
    /// Invalid, or a new granted limit below what is in use.
    SetLimitsBadRequest, [ValidationErrorEnvelope, LimitBelowUsedEnvelope]
}
one_of_schema! {
    /// Invalid, or rejected within `Prefer: wait`.
    PaymentBadRequest, [ValidationErrorEnvelope, PaymentRejectedEnvelope]
}
one_of_schema! {
    /// Invalid, or rejected within `Prefer: wait`.
    RefundBadRequest, [ValidationErrorEnvelope, RefundRejectedEnvelope]
}
one_of_schema! {
    /// The external id is used: at the claim (`CONFLICT_EXTERNAL_ID`), or found by the worker
    /// within `Prefer: wait` (`DUPLICATE_EXTERNAL_ID`).
    SubmitConflict, [ConflictEnvelope, DuplicateExternalIdEnvelope]
}

fn retry_after() -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        ))
        .description(Some("Seconds to wait before retrying."))
        .build()
}

/// A reusable error response: `#/components/responses/{name}`.
macro_rules! error_response {
    ($(#[doc = $doc:literal])+ $name:ident, $schema:ty $(, $header:literal = $value:expr)?) => {
        $(#[doc = $doc])+
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                let response = ResponseBuilder::new()
                    .description(concat!($($doc),+).trim())
                    .content(
                        "application/json",
                        ContentBuilder::new()
                            .schema(Some(schema_ref::<$schema>()))
                            .build(),
                    )
                    $(.header($header, $value))?
                    .build();
                (stringify!($name), response.into())
            }
        }
    };
}

error_response! {
    /// The request is malformed (`INVALID_PAYLOAD_FORMAT`, `INVALID_PAYLOAD_KEY`,
    /// `INVALID_MANDATORY`, `INVALID_VALUE`, `TENOR_NOT_ALLOWED`); the message names the field,
    /// header or query parameter. Nothing was claimed.
    BadRequest, ValidationErrorEnvelope
}
error_response! {
    /// `INVALID_SIGNATURE`: a missing or malformed auth header, an unknown or revoked key, a
    /// wrong signature, or a timestamp more than 300 s from the server clock.
    Unauthorized, SignatureErrorEnvelope
}
error_response! {
    /// `FORBIDDEN`: this key's role may not call this endpoint.
    Forbidden, ForbiddenEnvelope
}
error_response! {
    /// `NOT_FOUND`: no such resource, or not this merchant's.
    NotFound, NotFoundEnvelope
}
error_response! {
    /// A replay: this signed request was already received (sign it again with a fresh
    /// `X-Timestamp` to repeat it).
    Replay, ConflictEnvelope
}
error_response! {
    /// `PAYLOAD_TOO_LARGE`: the body is over 65,536 bytes.
    PayloadTooLarge, PayloadTooLargeEnvelope
}
error_response! {
    /// `RATE_LIMITED`: this key is over its rate (by default 1,000 requests per second with a
    /// burst of 60,000, configurable per key); retry after `Retry-After` seconds.
    RateLimited, RateLimitedEnvelope, "Retry-After" = retry_after()
}
error_response! {
    /// `SERVICE_UNAVAILABLE`: the broker, Redis or MySQL is unreachable (or no ingress behind
    /// nginx), or the request reached its deadline (35 s by default). Retrying with the same
    /// external id after `Retry-After` is safe.
    Unavailable, UnavailableEnvelope, "Retry-After" = retry_after()
}

/// The `202` of every asynchronous submission: queued, poll `Location`.
pub struct AcceptedResponse;

impl IntoResponses for AcceptedResponse {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let header = |schema: RefOr<Schema>, description: &str| {
            HeaderBuilder::new()
                .schema(Some(schema))
                .description(Some(description))
                .build()
        };
        let response = ResponseBuilder::new()
            .description(
                "Accepted: poll `Location` (not final within `Prefer: wait`, or no wait asked).",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(schema_ref::<AcceptedEnvelope>()))
                    .build(),
            )
            .header(
                "Location",
                header(string().into(), "`/status/{api_call_id}`"),
            )
            .header(
                "Retry-After",
                header(u32::schema(), "Seconds to wait before polling."),
            )
            .link(
                "getStatus",
                LinkBuilder::new()
                    .operation_id("getStatus")
                    .parameter("api_call_id", "$response.body#/api_call_id")
                    .build(),
            )
            .build();
        BTreeMap::from([("202".to_owned(), response.into())])
    }
}

/// The errors every signed endpoint may answer: 401, 413, 429 and 503.
pub struct SignedErrors;

impl IntoResponses for SignedErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        [
            ("401", "Unauthorized"),
            ("413", "PayloadTooLarge"),
            ("429", "RateLimited"),
            ("503", "Unavailable"),
        ]
        .into_iter()
        .map(|(status, name)| (status.to_owned(), Ref::from_response_name(name).into()))
        .collect()
    }
}

fn header_param(name: &str, required: bool, description: &str, schema: ObjectBuilder) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Header)
        .required(if required {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

fn external_id_schema() -> ObjectBuilder {
    string()
        .min_length(Some(1))
        .max_length(Some(128))
        .pattern(Some(r"^[\x21-\x7E]+$"))
        .examples([json!("ORDER-0001")])
}

/// `limit` and `cursor` of every paginated listing.
pub struct PageParams;

impl IntoParams for PageParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let query = |name: &str, description: &str, schema: ObjectBuilder| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema))
                .build()
        };
        vec![
            query(
                "limit",
                "Page size, 1-100 (default 20); otherwise `400 INVALID_VALUE`.",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
                    .minimum(Some(1))
                    .maximum(Some(100)),
            ),
            query(
                "cursor",
                "`next_cursor` of the previous page; one this endpoint did not issue for the \
                 same query (user, date and merchant, or status) is `400 INVALID_VALUE`.",
                string().pattern(Some("^[A-Za-z0-9_-]+$")),
            ),
        ]
    }
}

/// `X-External-Id` on a POST: mandatory and claimed.
pub struct ExternalIdRequired;

impl IntoParams for ExternalIdRequired {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header_param(
            "X-External-Id",
            true,
            "The caller's id for this request, 1-128 visible ASCII characters, part of the \
             signature. Claimed per (merchant, endpoint) once the request passes the signature, \
             role and body checks: a later use gets `409 CONFLICT_EXTERNAL_ID`. Missing: `400 \
             INVALID_MANDATORY`; malformed: `400 INVALID_VALUE`.",
            external_id_schema(),
        )]
    }
}

/// `X-External-Id` on another method: optional, signed, never claimed.
pub struct ExternalIdOptional;

impl IntoParams for ExternalIdOptional {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header_param(
            "X-External-Id",
            false,
            "Optional on this method; when present it must be 1-128 visible ASCII characters \
             (else `400 INVALID_VALUE`), it is part of the signature, and it is never claimed.",
            external_id_schema(),
        )]
    }
}

/// `Prefer: wait=N` on the asynchronous endpoints.
pub struct PreferWait;

impl IntoParams for PreferWait {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![header_param(
            "Prefer",
            false,
            "`wait=N`: hold the request up to N seconds (clamped to 30) for the outcome. Final \
             in time: `201 SUCCESS` with the status, or the rejection's status and reason. Not \
             final in time: `202`. A malformed preference is ignored.",
            string()
                .pattern(Some("^wait=[0-9]+$"))
                .examples([json!("wait=10")]),
        )]
    }
}
