//! `POST /create-user`, `GET /users/{id}`, `PATCH /users/{id}/status`, `GET /users/{id}/limits`,
//! `PATCH /users/{id}/limits`.

use crate::body::{self, Body, FromBody};
use crate::caller::Caller;
use crate::claims;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::routes::PathId;
use crate::state::AppState;
use axum::extract::State;
use chrono::{Datelike, NaiveDate, Utc};
use serde::Serialize;
use shared::contract::Tenor;
use shared::db::limit_changes::{ChangedBy, LimitsChanged};
use shared::db::users::{
    CreateUserError, IdempotencyRecord, LimitsMap, NewUser, UserStatus, UserView,
};
use shared::envelope::MessageAction;
use shared::ids::is_plausible_id;
use shared::json::JsonObject;
use shared::money::Money;
use shared::openapi::MoneyInput;
use utoipa::ToSchema;

pub const MINIMUM_AGE: i32 = 17;

/// Today's calendar date in Asia/Jakarta, where ages are counted.
fn jakarta_today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Asia::Jakarta)
        .date_naive()
}

/// `POST /create-user`: all fields mandatory, no others. Checked in this order.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUserRequest {
    /// 16 digits, unique among users.
    #[schema(pattern = "^[0-9]{16}$", example = "3201234567890001")]
    nik: String,
    #[schema(min_length = 1, max_length = 100, example = "Budi Santoso")]
    full_name: String,
    #[schema(min_length = 1, max_length = 100, example = "Budi Santoso")]
    legal_name: String,
    #[schema(min_length = 1, max_length = 100, example = "Bandung")]
    tempat_lahir: String,
    /// A real date; the user is 17 or older (in Asia/Jakarta), born in 1900 or later.
    #[schema(value_type = String, format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", example = "1997-03-02")]
    tanggal_lahir: NaiveDate,
    #[schema(value_type = MoneyInput)]
    gaji: Money,
    /// An `https` URL with a host, at most 2048 characters. Never fetched.
    #[schema(
        format = "uri",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]://[^\\s@/?#]+",
        max_length = 2048,
        example = "https://cdn.example.com/ktp.jpg"
    )]
    foto_ktp: String,
    /// An `https` URL with a host, at most 2048 characters. Never fetched.
    #[schema(
        format = "uri",
        pattern = "^[Hh][Tt][Tt][Pp][Ss]://[^\\s@/?#]+",
        max_length = 2048,
        example = "https://cdn.example.com/selfie.jpg"
    )]
    foto_selfie: String,
    #[schema(value_type = MoneyInput)]
    limit_one_month: Money,
    #[schema(value_type = MoneyInput)]
    limit_two_month: Money,
    #[schema(value_type = MoneyInput)]
    limit_three_month: Money,
    #[schema(value_type = MoneyInput)]
    limit_sixth: Money,
}

impl FromBody for CreateUserRequest {
    const FIELDS: &'static [&'static str] = &[
        "nik",
        "full_name",
        "legal_name",
        "tempat_lahir",
        "tanggal_lahir",
        "gaji",
        "foto_ktp",
        "foto_selfie",
        "limit_one_month",
        "limit_two_month",
        "limit_three_month",
        "limit_sixth",
    ];

    fn from_body(obj: &JsonObject<'_>) -> Result<CreateUserRequest, ApiError> {
        Ok(CreateUserRequest {
            nik: obj
                .get_str("nik")
                .filter(|s| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ApiError::invalid_value("nik", "must be a string of 16 digits"))?,
            full_name: body::text(obj, "full_name", 1, 100)?,
            legal_name: body::text(obj, "legal_name", 1, 100)?,
            tempat_lahir: body::text(obj, "tempat_lahir", 1, 100)?,
            tanggal_lahir: birth_date(obj)?,
            gaji: body::money(obj, "gaji")?,
            foto_ktp: body::https_url(obj, "foto_ktp")?,
            foto_selfie: body::https_url(obj, "foto_selfie")?,
            limit_one_month: body::money(obj, "limit_one_month")?,
            limit_two_month: body::money(obj, "limit_two_month")?,
            limit_three_month: body::money(obj, "limit_three_month")?,
            limit_sixth: body::money(obj, "limit_sixth")?,
        })
    }
}

impl From<CreateUserRequest> for NewUser {
    fn from(r: CreateUserRequest) -> NewUser {
        NewUser {
            nik: r.nik,
            full_name: r.full_name,
            legal_name: r.legal_name,
            tempat_lahir: r.tempat_lahir,
            tanggal_lahir: r.tanggal_lahir,
            gaji: r.gaji,
            foto_ktp: r.foto_ktp,
            foto_selfie: r.foto_selfie,
            limits: [
                r.limit_one_month,
                r.limit_two_month,
                r.limit_three_month,
                r.limit_sixth,
            ],
        }
    }
}

/// A real `YYYY-MM-DD` date, at least 17 years ago, not before 1900.
fn birth_date(obj: &shared::json::JsonObject<'_>) -> Result<NaiveDate, ApiError> {
    let field = "tanggal_lahir";
    let s = obj
        .get_str(field)
        .ok_or_else(|| ApiError::invalid_value(field, "must be a date string YYYY-MM-DD"))?;
    let shaped = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let date = shaped
        .then(|| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| ApiError::invalid_value(field, "must be a real date YYYY-MM-DD"))?;
    if date.year() < 1900 {
        return Err(ApiError::invalid_value(field, "must not be before 1900"));
    }
    if age_on(date, jakarta_today()) < MINIMUM_AGE {
        return Err(ApiError::invalid_value(
            field,
            "the user must be at least 17 years old",
        ));
    }
    Ok(date)
}

/// Full years from `born` to `today` (someone born on 29 February turns a year older on
/// 1 March in common years).
pub fn age_on(born: NaiveDate, today: NaiveDate) -> i32 {
    let mut age = today.year() - born.year();
    if (today.month(), today.day()) < (born.month(), born.day()) {
        age -= 1;
    }
    age
}

/// Create a user.
///
/// Admin only. Synchronous: `201` with the user, whose available limits start at the granted
/// ones. The NIK is stored encrypted and answered masked.
#[utoipa::path(
    post,
    path = "/create-user",
    operation_id = "createUser",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdRequired),
    request_body(content = CreateUserRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created: the user.", body = crate::openapi::UserEnvelope,
            links(
                ("getUser" = (operation_id = "getUser",
                    parameters(("user_id" = "$response.body#/message_data/user_id")))),
                ("getUserLimits" = (operation_id = "getUserLimits",
                    parameters(("user_id" = "$response.body#/message_data/user_id")))),
                ("setUserStatus" = (operation_id = "setUserStatus",
                    parameters(("user_id" = "$response.body#/message_data/user_id")))),
                ("getUserBillings" = (operation_id = "getUserBillings",
                    parameters(("user_id" = "$response.body#/message_data/user_id")))),
                ("getUserBills" = (operation_id = "getUserBills",
                    parameters(("user_id" = "$response.body#/message_data/user_id")))),
            )),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID` (the external id is used) or \
            `DUPLICATE_NIK` (a user with this NIK exists).", body = crate::openapi::CreateUserConflict),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    ctx: Caller,
    Body(request): Body<CreateUserRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let (state, ctx, user) = (&state, &ctx, NewUser::from(request));
    let claim = claims::claim(state, ctx, "create-user", None).await?;
    let user_id = shared::ids::new_user_id();
    let idem = IdempotencyRecord {
        merchant_id: &ctx.key.merchant_id,
        endpoint: "create-user",
        external_id: ctx.external_id.as_deref().unwrap_or(""),
        api_call_id: &ctx.api_call_id,
        body_sha256: claim.body_sha256,
    };
    let created = shared::db::users::create_user(
        &state.pool,
        &state.keyring,
        &user_id,
        &user,
        &idem,
        Utc::now(),
    )
    .await;
    match created {
        Ok(view) => {
            claim.accept(state, None).await;
            tracing::info!(%user_id, "user created");
            Ok(Reply::created(view))
        }
        Err(CreateUserError::DuplicateNik) => {
            claim.accept(state, None).await;
            Err(ApiError::new(
                MessageAction::DuplicateNik,
                "a user with this NIK exists",
            ))
        }
        Err(CreateUserError::ExternalIdUsed {
            original_api_call_id,
            original_body_sha256,
        }) => Err(claim
            .conflict_with(state, &original_api_call_id, &original_body_sha256)
            .await),
        Err(CreateUserError::Db(e)) => {
            claim.release(state).await;
            Err(ApiError::unavailable(&e))
        }
    }
}

/// A user.
///
/// Admin only. The profile (NIK masked) and the limits.
#[utoipa::path(
    get,
    path = "/users/{user_id}",
    operation_id = "getUser",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("user_id" = String, Path, description = "The user's id (`USR_…`)."), crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The user.", body = crate::openapi::UserEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn get(
    State(state): State<AppState>,
    _: Caller,
    PathId(user_id): PathId,
) -> Result<Reply<UserView>, ApiError> {
    let user_id = user_id.as_str();
    if !is_plausible_id(user_id) {
        return Err(ApiError::not_found());
    }
    let user = shared::db::users::get_user(&state.pool, user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(user))
}

/// `PATCH /users/{user_id}/status`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserStatusRequest {
    user_status: UserStatus,
}

impl FromBody for UserStatusRequest {
    const FIELDS: &'static [&'static str] = &["user_status"];

    fn from_body(obj: &JsonObject<'_>) -> Result<UserStatusRequest, ApiError> {
        obj.get_str("user_status")
            .as_deref()
            .and_then(UserStatus::parse)
            .map(|user_status| UserStatusRequest { user_status })
            .ok_or_else(|| ApiError::invalid_value("user_status", "must be ACTIVE or LOCK"))
    }
}

/// Activate or lock a user.
///
/// Admin only. A locked user's transactions are rejected (`USER_NOT_ACTIVE`); payments are
/// still accepted. Claimed by its signature: the same signed request again is a replay (409).
#[utoipa::path(
    patch,
    path = "/users/{user_id}/status",
    operation_id = "setUserStatus",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("user_id" = String, Path, description = "The user's id (`USR_…`)."), crate::openapi::ExternalIdOptional),
    request_body(content = UserStatusRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The user, with its new status.", body = crate::openapi::UserEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Replay),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn set_status(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(user_id): PathId,
    Body(UserStatusRequest {
        user_status: status,
    }): Body<UserStatusRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let user_id = user_id.as_str();
    if !is_plausible_id(user_id) {
        return Err(ApiError::not_found());
    }
    let claim = claims::claim_signature(&state, &ctx).await?;
    let user = match shared::db::users::set_status(&state.pool, user_id, status).await {
        Ok(user) => user.ok_or_else(ApiError::not_found)?,
        Err(e) => {
            claim.release(&state).await;
            return Err(e.into());
        }
    };
    tracing::info!(%user_id, status = status.as_str(), "user status set");
    Ok(Reply::ok(user))
}

/// A user's limits, as `GET /users/{user_id}/limits` answers them.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserLimits {
    user_id: String,
    limits: LimitsMap,
}

/// A user's limits.
///
/// Merchants and admins. Granted and available, per tenor.
#[utoipa::path(
    get,
    path = "/users/{user_id}/limits",
    operation_id = "getUserLimits",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("user_id" = String, Path, description = "The user's id (`USR_…`)."), crate::openapi::ExternalIdOptional),
    responses(
        (status = 200, description = "The user's limits.", body = crate::openapi::LimitsEnvelope),
        (status = 400, response = crate::openapi::BadRequest),
        (status = 404, response = crate::openapi::NotFound),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn limits(
    State(state): State<AppState>,
    _: Caller,
    PathId(user_id): PathId,
) -> Result<Reply<UserLimits>, ApiError> {
    if !is_plausible_id(&user_id) {
        return Err(ApiError::not_found());
    }
    let limits = shared::db::users::get_limits(&state.pool, &user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Reply::ok(UserLimits { user_id, limits }))
}

/// `PATCH /users/{user_id}/limits`: at least one of the four granted limits.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub(crate) struct SetLimitsRequest {
    #[schema(value_type = Option<MoneyInput>)]
    limit_one_month: Option<Money>,
    #[schema(value_type = Option<MoneyInput>)]
    limit_two_month: Option<Money>,
    #[schema(value_type = Option<MoneyInput>)]
    limit_three_month: Option<Money>,
    #[schema(value_type = Option<MoneyInput>)]
    limit_sixth: Option<Money>,
}

const LIMIT_FIELDS: [&str; 4] = [
    "limit_one_month",
    "limit_two_month",
    "limit_three_month",
    "limit_sixth",
];

impl FromBody for SetLimitsRequest {
    const FIELDS: &'static [&'static str] = &LIMIT_FIELDS;
    // None alone, but at least one (checked in `from_body`, before any value).
    const MANDATORY: &'static [&'static str] = &[];

    fn from_body(obj: &JsonObject<'_>) -> Result<SetLimitsRequest, ApiError> {
        if LIMIT_FIELDS.iter().all(|f| obj.get(f).is_none()) {
            return Err(ApiError::new(
                MessageAction::InvalidMandatory,
                "at least one of `limit_one_month`, `limit_two_month`, `limit_three_month`, \
                 `limit_sixth` is mandatory",
            ));
        }
        Ok(SetLimitsRequest {
            limit_one_month: body::optional_money(obj, "limit_one_month")?,
            limit_two_month: body::optional_money(obj, "limit_two_month")?,
            limit_three_month: body::optional_money(obj, "limit_three_month")?,
            limit_sixth: body::optional_money(obj, "limit_sixth")?,
        })
    }
}

impl SetLimitsRequest {
    /// The tenors named, with their new granted limits.
    fn requested(&self) -> Vec<(Tenor, Money)> {
        let values = [
            self.limit_one_month,
            self.limit_two_month,
            self.limit_three_month,
            self.limit_sixth,
        ];
        Tenor::ALL
            .into_iter()
            .zip(values)
            .filter_map(|(tenor, value)| value.map(|v| (tenor, v)))
            .collect()
    }
}

/// Change a user's granted limits.
///
/// Admin only. Each named tenor's granted limit becomes the new value and its available limit
/// moves by the same difference, atomically with the workers' debits. A new granted limit
/// below what is in use (granted − available) is `400 LIMIT_BELOW_USED` naming the first such
/// field, and nothing changes. A value equal to the current one changes nothing and is not
/// recorded; every change is listed at `GET /users/{user_id}/limit-changes`. Claimed by its
/// signature: the same signed request again is a replay (409).
#[utoipa::path(
    patch,
    path = "/users/{user_id}/limits",
    operation_id = "setUserLimits",
    tag = "users",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(("user_id" = String, Path, description = "The user's id (`USR_…`)."), crate::openapi::ExternalIdOptional),
    request_body(content = SetLimitsRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The user, with its limits after the change.", body = crate::openapi::UserEnvelope),
        (status = 400, description = "Malformed (the message names the field), or \
            `LIMIT_BELOW_USED`: a new granted limit is below what is in use.",
            body = crate::openapi::SetLimitsBadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 409, response = crate::openapi::Replay),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn set_limits(
    State(state): State<AppState>,
    ctx: Caller,
    PathId(user_id): PathId,
    Body(request): Body<SetLimitsRequest>,
) -> Result<Reply<UserView>, ApiError> {
    let user_id = user_id.as_str();
    if !is_plausible_id(user_id) {
        return Err(ApiError::not_found());
    }
    let claim = claims::claim_signature(&state, &ctx).await?;
    let by = ChangedBy {
        api_call_id: &ctx.api_call_id,
        client_id: &ctx.key.client_id,
    };
    let requested = request.requested();
    let changed =
        shared::db::limit_changes::change_limits(&state.pool, user_id, &requested, &by, Utc::now())
            .await;
    match changed {
        Err(e) => {
            claim.release(&state).await;
            Err(e.into())
        }
        Ok(LimitsChanged::NoSuchUser) => Err(ApiError::not_found()),
        Ok(LimitsChanged::BelowUsed(tenor)) => Err(ApiError::new(
            MessageAction::LimitBelowUsed,
            format!(
                "`{}` is below what the user has in use (granted − available); nothing was changed",
                // The granted column is named as the body field (the seed's schema).
                tenor.limit_columns().0
            ),
        )),
        Ok(LimitsChanged::Applied(changes)) => {
            for c in &changes {
                tracing::info!(%user_id, tenor = c.tenor.months(), old = %c.old.granted,
                    new = %c.new.granted, "granted limit changed");
            }
            let user = shared::db::users::get_user(&state.pool, user_id)
                .await?
                .ok_or_else(ApiError::not_found)?;
            Ok(Reply::ok(user))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
    }

    #[test]
    fn age_counts_full_years() {
        assert_eq!(age_on(d("2009-11-25"), d("2026-11-25")), 17);
        assert_eq!(age_on(d("2009-11-26"), d("2026-11-25")), 16);
        assert_eq!(age_on(d("2008-02-29"), d("2025-02-28")), 16);
        assert_eq!(age_on(d("2008-02-29"), d("2025-03-01")), 17);
    }
}
