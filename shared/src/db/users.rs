//! Users, their encrypted NIK, and their per-tenor limits.

use super::{DbError, from_naive, is_unique_violation, to_naive};
use crate::contract::Tenor;
use crate::crypto::Keyring;
use crate::money::Money;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlPool, Row};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) const NIK_AAD: &[u8] = b"users.nik";
pub(crate) const NIK_INDEX_PURPOSE: &str = "nik";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UserStatus {
    Active,
    Lock,
}

impl UserStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "ACTIVE",
            UserStatus::Lock => "LOCK",
        }
    }

    pub fn parse(s: &str) -> Option<UserStatus> {
        match s {
            "ACTIVE" => Some(UserStatus::Active),
            "LOCK" => Some(UserStatus::Lock),
            _ => None,
        }
    }
}

/// `3201********0001`
pub fn mask_nik(nik: &str) -> String {
    if nik.len() == 16 && nik.is_ascii() {
        format!("{}********{}", &nik[..4], &nik[12..])
    } else {
        "*".repeat(16)
    }
}

/// The granted limit of one tenor and what is available of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitPair {
    pub granted: Money,
    pub available: Money,
}

/// `{"1": {"granted", "available"}, "2": …, "3": …, "6": …}`
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsMap(pub BTreeMap<&'static str, LimitPair>);

/// Named `Limits` in the document: an object with one property per tenor.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for LimitsMap {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        let mut limits = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "A limits map (SPEC §5): one entry per tenor, keyed by its months.",
            ))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        for tenor in Tenor::ALL {
            limits = limits
                .property(tenor.key(), crate::openapi::schema_ref::<LimitPair>())
                .required(tenor.key());
        }
        limits.into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for LimitsMap {
    fn name() -> std::borrow::Cow<'static, str> {
        "Limits".into()
    }
}

impl LimitsMap {
    pub fn get(&self, tenor: Tenor) -> Option<LimitPair> {
        self.0.get(tenor.key()).copied()
    }
}

fn money(row: &MySqlRow, col: &str) -> Result<Money, DbError> {
    let d: rust_decimal::Decimal = row.try_get(col)?;
    Money::new(d).map_err(|e| DbError::Corrupt(format!("{col}: {e}")))
}

pub(crate) fn limits_from_row(row: &MySqlRow) -> Result<LimitsMap, DbError> {
    let mut map = BTreeMap::new();
    for tenor in Tenor::ALL {
        let (granted, available) = tenor.limit_columns();
        map.insert(
            tenor.key(),
            LimitPair {
                granted: money(row, granted)?,
                available: money(row, available)?,
            },
        );
    }
    Ok(LimitsMap(map))
}

/// The granted then available limit columns, in `Tenor::ALL` order.
pub const LIMIT_COLUMNS: &str = "limit_one_month, limit_two_month, limit_three_month, limit_sixth, available_one_month, available_two_month, available_three_month, available_sixth";

/// The limits of a user, or `None` when there is no such user.
pub async fn get_limits<'e, E>(executor: E, user_id: &str) -> Result<Option<LimitsMap>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {LIMIT_COLUMNS} FROM user_limit_balances WHERE user_id = ?"
    )))
    .bind(user_id)
    .fetch_optional(executor)
    .await?;
    row.as_ref().map(limits_from_row).transpose()
}

/// [`get_limits`] for many users in one query, by user; users without limits are absent.
pub async fn get_limits_many(
    conn: &mut sqlx::MySqlConnection,
    users: &[String],
) -> Result<std::collections::BTreeMap<String, LimitsMap>, DbError> {
    let mut found = std::collections::BTreeMap::new();
    if users.is_empty() {
        return Ok(found);
    }
    let mut query = sqlx::QueryBuilder::<MySql>::new(format!(
        "SELECT user_id, {LIMIT_COLUMNS} FROM user_limit_balances WHERE user_id IN "
    ));
    super::push_in_list(&mut query, users.iter().map(String::as_str));
    for r in query.build().fetch_all(&mut *conn).await? {
        found.insert(r.try_get("user_id")?, limits_from_row(&r)?);
    }
    Ok(found)
}

/// A validated `POST /create-user` body.
#[derive(Clone)]
pub struct NewUser {
    pub nik: String,
    pub full_name: String,
    pub legal_name: String,
    pub tempat_lahir: String,
    pub tanggal_lahir: NaiveDate,
    pub gaji: Money,
    pub foto_ktp: String,
    pub foto_selfie: String,
    /// Granted limits by tenor, in `Tenor::ALL` order.
    pub limits: [Money; 4],
}

/// A user (SPEC §6), as every endpoint returns it: the NIK masked.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = User))]
#[serde(deny_unknown_fields)]
pub struct UserView {
    #[cfg_attr(
        feature = "openapi",
        schema(example = "USR_5f0c6a1e9b8d4c2fa1b3c5d7e9f0a2b4")
    )]
    pub user_id: String,
    pub user_status: UserStatus,
    /// The first 4 and last 4 digits around 8 `*`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[0-9]{4}\*{8}[0-9]{4}$", example = "3201********0001")
    )]
    pub nik: String,
    pub full_name: String,
    pub legal_name: String,
    pub tempat_lahir: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Date))]
    pub tanggal_lahir: String,
    pub gaji: Money,
    pub foto_ktp: String,
    pub foto_selfie: String,
    pub limits: LimitsMap,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub created_at: String,
}

/// A user's limits and whether the user may take new contracts, as locked by
/// [`lock_limits`].
#[derive(Debug, Clone)]
pub struct LockedLimits {
    pub active: bool,
    pub limits: LimitsMap,
}

/// Locks the limits rows (and the users rows) of these users for the rest of the transaction,
/// in ascending user id order, the one order every worker batch takes them in so concurrent
/// batches queue rather than deadlock. Users that do not exist are absent from the answer.
pub async fn lock_limits(
    conn: &mut sqlx::MySqlConnection,
    user_ids: &BTreeSet<&str>,
) -> Result<BTreeMap<String, LockedLimits>, DbError> {
    let mut found = BTreeMap::new();
    if user_ids.is_empty() {
        return Ok(found);
    }
    // STRAIGHT_JOIN: the balances row is read (and locked) first, then its user, so every
    // batch interleaves the two tables' locks the same way. FORCE INDEX: a locking read must
    // lock only the rows it names. On a small table the optimizer prefers a full scan, which
    // under REPEATABLE READ locks every row it reads, and the worker's lanes (which share no
    // user) then deadlock; seen with 12 users.
    let mut query = sqlx::QueryBuilder::new(format!(
        "SELECT b.user_id, u.user_status, {LIMIT_COLUMNS} FROM user_limit_balances b FORCE INDEX (PRIMARY)
         STRAIGHT_JOIN users u ON u.user_id = b.user_id WHERE b.user_id IN "
    ));
    super::push_in_list(&mut query, user_ids.iter().copied());
    query.push(" ORDER BY b.user_id FOR UPDATE");
    for row in query.build().fetch_all(&mut *conn).await? {
        let status: String = row.try_get("user_status")?;
        found.insert(
            row.try_get("user_id")?,
            LockedLimits {
                active: status == UserStatus::Active.as_str(),
                limits: limits_from_row(&row)?,
            },
        );
    }
    Ok(found)
}

/// The idempotency record of a synchronous creation.
pub struct IdempotencyRecord<'a> {
    pub merchant_id: &'a str,
    pub endpoint: &'a str,
    pub external_id: &'a str,
    pub api_call_id: &'a str,
    pub body_sha256: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with this NIK exists")]
    DuplicateNik,
    #[error("external id already used by {original_api_call_id}")]
    ExternalIdUsed {
        original_api_call_id: String,
        original_body_sha256: [u8; 32],
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CreateUserError {
    fn from(e: sqlx::Error) -> Self {
        CreateUserError::Db(DbError::Sqlx(e))
    }
}

/// Creates the user and its limits, atomically with the external id's MySQL record. A
/// duplicate NIK keeps the external id used (SPEC §3: business rejections keep the claim).
pub async fn create_user(
    pool: &MySqlPool,
    keyring: &Keyring,
    user_id: &str,
    user: &NewUser,
    idem: &IdempotencyRecord<'_>,
    now: DateTime<Utc>,
) -> Result<UserView, CreateUserError> {
    let (key_id, ciphertext) = keyring
        .encrypt(user.nik.as_bytes(), NIK_AAD)
        .map_err(|e| DbError::Corrupt(e.to_string()))?;
    let blind = keyring.blind_index(NIK_INDEX_PURPOSE, &user.nik);
    let masked = mask_nik(&user.nik);
    let ts = to_naive(now);

    let mut tx = pool.begin().await?;
    if let Err(e) = super::outcomes::insert_idempotency(&mut tx, idem, now).await {
        if e.is_unique_violation() {
            drop(tx);
            let (original, sha) = super::outcomes::find_idempotency(
                pool,
                idem.merchant_id,
                idem.endpoint,
                idem.external_id,
            )
            .await?
            .ok_or_else(|| DbError::Corrupt("idempotency row vanished".into()))?;
            return Err(CreateUserError::ExternalIdUsed {
                original_api_call_id: original,
                original_body_sha256: sha,
            });
        }
        return Err(e.into());
    }
    sqlx::query("SAVEPOINT create_user")
        .execute(&mut *tx)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO users (user_id, user_status, nik_ciphertext, nik_key_id, nik_blind_index, nik_masked,
            full_name, legal_name, tempat_lahir, tanggal_lahir, gaji, foto_ktp, foto_selfie,
            created_by, api_call_id, created_at, updated_at)
         VALUES (?, 'ACTIVE', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(user_id)
    .bind(ciphertext)
    .bind(key_id)
    .bind(&blind[..])
    .bind(&masked)
    .bind(&user.full_name)
    .bind(&user.legal_name)
    .bind(&user.tempat_lahir)
    .bind(user.tanggal_lahir)
    .bind(user.gaji.value())
    .bind(&user.foto_ktp)
    .bind(&user.foto_selfie)
    .bind(idem.merchant_id)
    .bind(idem.api_call_id)
    .bind(ts)
    .bind(ts)
    .execute(&mut *tx)
    .await;
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            sqlx::query("ROLLBACK TO SAVEPOINT create_user")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Err(CreateUserError::DuplicateNik);
        }
        Err(e) => return Err(e.into()),
    }
    let [l1, l2, l3, l6] = user.limits;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO user_limit_balances (user_id, {LIMIT_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(user_id)
    .bind(l1.value())
    .bind(l2.value())
    .bind(l3.value())
    .bind(l6.value())
    .bind(l1.value())
    .bind(l2.value())
    .bind(l3.value())
    .bind(l6.value())
    .bind(ts)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let mut limits = BTreeMap::new();
    for (tenor, granted) in Tenor::ALL.into_iter().zip(user.limits) {
        limits.insert(
            tenor.key(),
            LimitPair {
                granted,
                available: granted,
            },
        );
    }
    Ok(UserView {
        user_id: user_id.to_owned(),
        user_status: UserStatus::Active,
        nik: masked,
        full_name: user.full_name.clone(),
        legal_name: user.legal_name.clone(),
        tempat_lahir: user.tempat_lahir.clone(),
        tanggal_lahir: user.tanggal_lahir.format("%Y-%m-%d").to_string(),
        gaji: user.gaji,
        foto_ktp: user.foto_ktp.clone(),
        foto_selfie: user.foto_selfie.clone(),
        limits: LimitsMap(limits),
        created_at: crate::status::format_instant(&from_naive(ts)),
    })
}

pub async fn get_user(pool: &MySqlPool, user_id: &str) -> Result<Option<UserView>, DbError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT u.user_id, u.user_status, u.nik_masked, u.full_name, u.legal_name, u.tempat_lahir,
                u.tanggal_lahir, u.gaji, u.foto_ktp, u.foto_selfie, u.created_at, {LIMIT_COLUMNS}
         FROM users u JOIN user_limit_balances b ON b.user_id = u.user_id
         WHERE u.user_id = ?"
    )))
    .bind(user_id)
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let status: String = row.try_get("user_status")?;
    let born: NaiveDate = row.try_get("tanggal_lahir")?;
    let created: chrono::NaiveDateTime = row.try_get("created_at")?;
    Ok(Some(UserView {
        user_id: row.try_get("user_id")?,
        user_status: UserStatus::parse(&status)
            .ok_or_else(|| DbError::Corrupt(format!("user_status {status}")))?,
        nik: row.try_get("nik_masked")?,
        full_name: row.try_get("full_name")?,
        legal_name: row.try_get("legal_name")?,
        tempat_lahir: row.try_get("tempat_lahir")?,
        tanggal_lahir: born.format("%Y-%m-%d").to_string(),
        gaji: money(&row, "gaji")?,
        foto_ktp: row.try_get("foto_ktp")?,
        foto_selfie: row.try_get("foto_selfie")?,
        limits: limits_from_row(&row)?,
        created_at: crate::status::format_instant(&from_naive(created)),
    }))
}

/// Sets the status; `None` when there is no such user.
pub async fn set_status(
    pool: &MySqlPool,
    user_id: &str,
    status: UserStatus,
) -> Result<Option<UserView>, DbError> {
    sqlx::query("UPDATE users SET user_status = ?, updated_at = ? WHERE user_id = ?")
        .bind(status.as_str())
        .bind(to_naive(Utc::now()))
        .bind(user_id)
        .execute(pool)
        .await?;
    // MySQL counts only changed rows (0 may mean "already so"), so the read tells whether
    // the user exists.
    get_user(pool, user_id).await
}

/// Re-encrypts every NIK not under the active master key (compare-and-set per row, like the
/// key secrets). The blind index does not change: it has its own key.
pub async fn reencrypt_niks(pool: &MySqlPool, keyring: &Keyring) -> Result<u64, DbError> {
    let active = keyring.active_key_id().to_owned();
    let mut moved = 0;
    loop {
        let rows = sqlx::query(
            "SELECT user_id, nik_key_id, nik_ciphertext FROM users WHERE nik_key_id <> ? LIMIT 500",
        )
        .bind(&active)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Ok(moved);
        }
        for r in rows {
            let user_id: String = r.try_get("user_id")?;
            let old_id: String = r.try_get("nik_key_id")?;
            let old_ct: Vec<u8> = r.try_get("nik_ciphertext")?;
            let plain = keyring
                .decrypt(&old_id, &old_ct, NIK_AAD)
                .map_err(|e| DbError::Corrupt(format!("{user_id}: {e}")))?;
            let (new_id, new_ct) = keyring
                .encrypt(&plain, NIK_AAD)
                .map_err(|e| DbError::Corrupt(e.to_string()))?;
            let done = sqlx::query(
                "UPDATE users SET nik_key_id = ?, nik_ciphertext = ? WHERE user_id = ? AND nik_key_id = ? AND nik_ciphertext = ?",
            )
            .bind(new_id)
            .bind(new_ct)
            .bind(&user_id)
            .bind(&old_id)
            .bind(&old_ct)
            .execute(pool)
            .await?;
            moved += done.rows_affected();
        }
    }
}
