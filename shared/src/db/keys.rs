//! Merchants and their API keys: the one implementation of issuing, rotating, revoking and
//! rate-limiting a key, behind `xyzctl keys …` and the admin endpoints `/admin/keys…`.
//! Secrets are stored encrypted under a master key; the plaintext exists only in the one
//! answer that issues it (`xyzctl keys create`/`rotate`, `POST /admin/keys`, `…/rotate`) and in
//! ingress memory.

use super::users::IdempotencyRecord;
use super::{DbError, from_naive, to_naive};
use crate::crypto::Keyring;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlConnection, MySqlPool, Row};

/// The merchant every admin key belongs to.
pub const PLATFORM_MERCHANT: &str = "PLATFORM";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Merchant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Merchant => "merchant",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "merchant" => Some(Role::Merchant),
            _ => None,
        }
    }
}

/// A key as the ingress needs it to verify requests.
#[derive(Clone)]
pub struct ActiveKey {
    pub client_id: String,
    pub merchant_id: String,
    pub role: Role,
    pub secret: Vec<u8>,
    /// The previous secret while a rotation's grace period lasts.
    pub previous_secret: Option<(Vec<u8>, DateTime<Utc>)>,
    pub rate_per_second: Option<u32>,
    pub rate_burst: Option<u32>,
}

impl std::fmt::Debug for ActiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveKey")
            .field("client_id", &self.client_id)
            .field("merchant_id", &self.merchant_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A key as operators see it: never its secret.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    pub client_id: String,
    /// The merchant the key belongs to (`PLATFORM` for admin keys).
    pub merchant_id: String,
    pub name: String,
    pub role: Role,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub created_at: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Instant>))]
    pub revoked_at: Option<String>,
    /// The key's own sustained rate (requests per second); null: the deployment's default.
    pub rate_per_second: Option<u32>,
    /// The key's own burst; null: the deployment's default.
    pub rate_burst: Option<u32>,
}

/// A key's own rate limit; a `None` part is the deployment's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyRate {
    pub per_second: Option<u32>,
    pub burst: Option<u32>,
}

/// A key just issued: the one answer that carries its secret.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct IssuedKey {
    pub client_id: String,
    /// Shown only here; store it now, it cannot be read again.
    pub secret: String,
    pub merchant_id: String,
    pub name: String,
    pub role: Role,
    pub rate_per_second: Option<u32>,
    pub rate_burst: Option<u32>,
}

impl std::fmt::Debug for IssuedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedKey")
            .field("client_id", &self.client_id)
            .field("merchant_id", &self.merchant_id)
            .finish_non_exhaustive()
    }
}

/// A key given a new secret: the one answer that carries it.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotatedKey {
    pub client_id: String,
    /// Shown only here; store it now, it cannot be read again.
    pub secret: String,
    /// Until then the previous secret still verifies.
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub previous_secret_valid_until: String,
}

impl std::fmt::Debug for RotatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedKey")
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// Why a key could not be issued or rotated.
#[derive(Debug, thiserror::Error)]
pub enum KeyWriteError {
    #[error("a key name must be 1-64 characters of [A-Za-z0-9_-]")]
    InvalidName,
    #[error(
        "a merchant key cannot be named {PLATFORM_MERCHANT} (in any case): it is the platform's identity"
    )]
    ReservedName,
    #[error("external id already used by {original_api_call_id}")]
    ExternalIdUsed {
        original_api_call_id: String,
        original_body_sha256: [u8; 32],
    },
    #[error("no random bytes: {0}")]
    Random(#[from] crate::crypto::CryptoError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for KeyWriteError {
    fn from(e: sqlx::Error) -> KeyWriteError {
        KeyWriteError::Db(e.into())
    }
}

/// Records the request's external id in the write's transaction; the id used already is
/// [`KeyWriteError::ExternalIdUsed`], with the call that used it.
async fn record_external_id(
    pool: &MySqlPool,
    tx: &mut MySqlConnection,
    idem: Option<&IdempotencyRecord<'_>>,
) -> Result<(), KeyWriteError> {
    let Some(idem) = idem else { return Ok(()) };
    match super::outcomes::insert_idempotency(tx, idem, Utc::now()).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_unique_violation() => {
            let (original, sha) = super::outcomes::find_idempotency(
                pool,
                idem.merchant_id,
                idem.endpoint,
                idem.external_id,
            )
            .await?
            .ok_or_else(|| DbError::Corrupt("idempotency row vanished".into()))?;
            Err(KeyWriteError::ExternalIdUsed {
                original_api_call_id: original,
                original_body_sha256: sha,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// Issues a key: a fresh client id and secret, stored with the key's own rate (if any),
/// atomically with the request's external id when there is one.
pub async fn issue_key(
    pool: &MySqlPool,
    keyring: &Keyring,
    name: &str,
    role: Role,
    rate: KeyRate,
    idem: Option<&IdempotencyRecord<'_>>,
) -> Result<IssuedKey, KeyWriteError> {
    if !is_valid_merchant_name(name) {
        return Err(KeyWriteError::InvalidName);
    }
    let merchant_id = merchant_for(name, role).map_err(|e| match e {
        CreateKeyError::ReservedName => KeyWriteError::ReservedName,
        CreateKeyError::Db(e) => KeyWriteError::Db(e),
    })?;
    let client_id = crate::ids::new_client_id();
    let secret = crate::crypto::random_token(32)?;
    let mut tx = pool.begin().await?;
    record_external_id(pool, &mut tx, idem).await?;
    insert_key(
        &mut tx,
        keyring,
        &client_id,
        name,
        &merchant_id,
        role,
        &secret,
    )
    .await?;
    if rate != KeyRate::default() {
        set_rate_on(&mut tx, &client_id, rate).await?;
    }
    tx.commit().await?;
    Ok(IssuedKey {
        client_id,
        secret,
        merchant_id,
        name: name.to_owned(),
        role,
        rate_per_second: rate.per_second,
        rate_burst: rate.burst,
    })
}

/// Gives an active key a new secret; the previous one keeps verifying for `grace`. `None`
/// when no active key has that id (the external id stays used: a business rejection keeps
/// its claim).
pub async fn rotate_key(
    pool: &MySqlPool,
    keyring: &Keyring,
    client_id: &str,
    grace: chrono::Duration,
    idem: Option<&IdempotencyRecord<'_>>,
) -> Result<Option<RotatedKey>, KeyWriteError> {
    let secret = crate::crypto::random_token(32)?;
    let until = Utc::now() + grace;
    let mut tx = pool.begin().await?;
    record_external_id(pool, &mut tx, idem).await?;
    let rotated = rotate_secret_on(&mut tx, keyring, client_id, &secret, until).await?;
    tx.commit().await?;
    Ok(rotated.then(|| RotatedKey {
        client_id: client_id.to_owned(),
        secret,
        previous_secret_valid_until: crate::status::format_instant(&until),
    }))
}

fn secret_aad(client_id: &str) -> Vec<u8> {
    format!("api-key-secret:{client_id}").into_bytes()
}

/// Why a key cannot be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateKeyError {
    /// A merchant named as the platform would share the admins' merchant identity: their
    /// external ids, their calls and their contracts.
    #[error(
        "a merchant key cannot be named {PLATFORM_MERCHANT} (in any case): it is the platform's identity"
    )]
    ReservedName,
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<sqlx::Error> for CreateKeyError {
    fn from(e: sqlx::Error) -> CreateKeyError {
        CreateKeyError::Db(e.into())
    }
}

/// A merchant's name as keys are created with it: 1-64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_merchant_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The merchant a new key belongs to: its name, or the platform for admin keys.
pub(crate) fn merchant_for(name: &str, role: Role) -> Result<String, CreateKeyError> {
    match role {
        Role::Admin => Ok(PLATFORM_MERCHANT.to_owned()),
        Role::Merchant if name.eq_ignore_ascii_case(PLATFORM_MERCHANT) => {
            Err(CreateKeyError::ReservedName)
        }
        Role::Merchant => Ok(name.to_owned()),
    }
}

/// Stores a new key; returns the merchant id.
pub async fn create_key(
    pool: &MySqlPool,
    keyring: &Keyring,
    client_id: &str,
    name: &str,
    role: Role,
    secret: &str,
) -> Result<String, CreateKeyError> {
    let merchant_id = merchant_for(name, role)?;
    let mut tx = pool.begin().await?;
    insert_key(
        &mut tx,
        keyring,
        client_id,
        name,
        &merchant_id,
        role,
        secret,
    )
    .await?;
    tx.commit().await?;
    Ok(merchant_id)
}

async fn insert_key(
    tx: &mut MySqlConnection,
    keyring: &Keyring,
    client_id: &str,
    name: &str,
    merchant_id: &str,
    role: Role,
    secret: &str,
) -> Result<(), DbError> {
    let now = to_naive(Utc::now());
    let (key_id, ciphertext) = keyring
        .encrypt(secret.as_bytes(), &secret_aad(client_id))
        .map_err(|e| DbError::Corrupt(e.to_string()))?;
    sqlx::query("INSERT IGNORE INTO merchants (merchant_id, created_at) VALUES (?, ?)")
        .bind(merchant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO api_keys (client_id, merchant_id, name, role, secret_key_id, secret_ciphertext, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(client_id)
    .bind(merchant_id)
    .bind(name)
    .bind(role.as_str())
    .bind(key_id)
    .bind(ciphertext)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Replaces a key's secret; the previous one keeps verifying until `grace_until`.
pub async fn rotate_secret(
    pool: &MySqlPool,
    keyring: &Keyring,
    client_id: &str,
    new_secret: &str,
    grace_until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let mut conn = pool.acquire().await?;
    rotate_secret_on(&mut conn, keyring, client_id, new_secret, grace_until).await
}

async fn rotate_secret_on(
    conn: &mut MySqlConnection,
    keyring: &Keyring,
    client_id: &str,
    new_secret: &str,
    grace_until: DateTime<Utc>,
) -> Result<bool, DbError> {
    let (key_id, ciphertext) = keyring
        .encrypt(new_secret.as_bytes(), &secret_aad(client_id))
        .map_err(|e| DbError::Corrupt(e.to_string()))?;
    let done = sqlx::query(
        "UPDATE api_keys SET prev_secret_key_id = secret_key_id, prev_secret_ciphertext = secret_ciphertext,
            prev_secret_expires_at = ?, secret_key_id = ?, secret_ciphertext = ?, updated_at = ?
         WHERE client_id = ? AND revoked_at IS NULL",
    )
    .bind(to_naive(grace_until))
    .bind(key_id)
    .bind(ciphertext)
    .bind(to_naive(Utc::now()))
    .bind(client_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Re-encrypts every stored key secret not under the active master key. Each row is
/// rewritten only if it still holds what was read (compare-and-set), so running ingresses,
/// which know both keys, never see a half-rotated row. Returns how many rows moved.
pub async fn reencrypt_secrets(pool: &MySqlPool, keyring: &Keyring) -> Result<u64, DbError> {
    let active = keyring.active_key_id().to_owned();
    let rows = sqlx::query(
        "SELECT client_id, secret_key_id, secret_ciphertext, prev_secret_key_id, prev_secret_ciphertext
         FROM api_keys WHERE secret_key_id <> ? OR (prev_secret_key_id IS NOT NULL AND prev_secret_key_id <> ?)",
    )
    .bind(&active)
    .bind(&active)
    .fetch_all(pool)
    .await?;
    let mut moved = 0;
    for r in rows {
        let client_id: String = r.try_get("client_id")?;
        let aad = secret_aad(&client_id);
        for (id_col, ct_col) in [
            ("secret_key_id", "secret_ciphertext"),
            ("prev_secret_key_id", "prev_secret_ciphertext"),
        ] {
            let old_id: Option<String> = r.try_get(id_col)?;
            let old_ct: Option<Vec<u8>> = r.try_get(ct_col)?;
            let (Some(old_id), Some(old_ct)) = (old_id, old_ct) else {
                continue;
            };
            if old_id == active {
                continue;
            }
            let plain = keyring
                .decrypt(&old_id, &old_ct, &aad)
                .map_err(|e| DbError::Corrupt(format!("{client_id}: {e}")))?;
            let (new_id, new_ct) = keyring
                .encrypt(&plain, &aad)
                .map_err(|e| DbError::Corrupt(e.to_string()))?;
            let done = sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE api_keys SET {id_col} = ?, {ct_col} = ? WHERE client_id = ? AND {id_col} = ? AND {ct_col} = ?"
            )))
            .bind(new_id)
            .bind(new_ct)
            .bind(&client_id)
            .bind(&old_id)
            .bind(&old_ct)
            .execute(pool)
            .await?;
            moved += done.rows_affected();
        }
    }
    Ok(moved)
}

/// Revokes a key; false when no active key has that id.
pub async fn revoke_key(pool: &MySqlPool, client_id: &str) -> Result<bool, DbError> {
    let now = to_naive(Utc::now());
    let done = sqlx::query(
        "UPDATE api_keys SET revoked_at = ?, updated_at = ? WHERE client_id = ? AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(now)
    .bind(client_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets a key's own rate limit (`None` for the deployment's default).
pub async fn set_rate(
    pool: &MySqlPool,
    client_id: &str,
    per_second: Option<u32>,
    burst: Option<u32>,
) -> Result<bool, DbError> {
    let mut conn = pool.acquire().await?;
    set_rate_on(&mut conn, client_id, KeyRate { per_second, burst }).await
}

async fn set_rate_on(
    conn: &mut MySqlConnection,
    client_id: &str,
    KeyRate { per_second, burst }: KeyRate,
) -> Result<bool, DbError> {
    let done = sqlx::query(
        "UPDATE api_keys SET rate_per_second = ?, rate_burst = ?, updated_at = ? WHERE client_id = ? AND revoked_at IS NULL",
    )
    .bind(per_second)
    .bind(burst)
    .bind(to_naive(Utc::now()))
    .bind(client_id)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

const KEY_INFO_COLUMNS: &str =
    "client_id, merchant_id, name, role, created_at, revoked_at, rate_per_second, rate_burst";

fn key_info(r: &sqlx::mysql::MySqlRow) -> Result<KeyInfo, DbError> {
    let role: String = r.try_get("role")?;
    let created: chrono::NaiveDateTime = r.try_get("created_at")?;
    let revoked: Option<chrono::NaiveDateTime> = r.try_get("revoked_at")?;
    Ok(KeyInfo {
        client_id: r.try_get("client_id")?,
        merchant_id: r.try_get("merchant_id")?,
        name: r.try_get("name")?,
        role: Role::parse(&role).ok_or_else(|| DbError::Corrupt(format!("role {role}")))?,
        created_at: crate::status::format_instant(&from_naive(created)),
        revoked_at: revoked.map(|t| crate::status::format_instant(&from_naive(t))),
        rate_per_second: r.try_get("rate_per_second")?,
        rate_burst: r.try_get("rate_burst")?,
    })
}

/// Every key, revoked ones included, oldest first; never a secret.
pub async fn list_keys(pool: &MySqlPool) -> Result<Vec<KeyInfo>, DbError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_INFO_COLUMNS} FROM api_keys ORDER BY created_at, client_id"
    )))
    .fetch_all(pool)
    .await?;
    rows.iter().map(key_info).collect()
}

/// One key, revoked or not; never its secret.
pub async fn get_key(pool: &MySqlPool, client_id: &str) -> Result<Option<KeyInfo>, DbError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_INFO_COLUMNS} FROM api_keys WHERE client_id = ?"
    )))
    .bind(client_id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(key_info).transpose()
}

/// Every key that is not revoked, secrets decrypted: what the ingress verifies against.
pub async fn load_active_keys(
    pool: &MySqlPool,
    keyring: &Keyring,
) -> Result<Vec<ActiveKey>, DbError> {
    let rows = sqlx::query(
        "SELECT client_id, merchant_id, role, secret_key_id, secret_ciphertext,
                prev_secret_key_id, prev_secret_ciphertext, prev_secret_expires_at,
                rate_per_second, rate_burst
         FROM api_keys WHERE revoked_at IS NULL",
    )
    .fetch_all(pool)
    .await?;
    let now = Utc::now();
    let mut keys = Vec::with_capacity(rows.len());
    for r in rows {
        let client_id: String = r.try_get("client_id")?;
        let role: String = r.try_get("role")?;
        let Some(role) = Role::parse(&role) else {
            tracing::error!(%client_id, "api key with an unknown role is ignored");
            continue;
        };
        let key_id: String = r.try_get("secret_key_id")?;
        let ct: Vec<u8> = r.try_get("secret_ciphertext")?;
        let secret = match keyring.decrypt(&key_id, &ct, &secret_aad(&client_id)) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(%client_id, error = %e, "api key secret does not decrypt; key ignored");
                continue;
            }
        };
        let prev_id: Option<String> = r.try_get("prev_secret_key_id")?;
        let prev_ct: Option<Vec<u8>> = r.try_get("prev_secret_ciphertext")?;
        let prev_exp: Option<chrono::NaiveDateTime> = r.try_get("prev_secret_expires_at")?;
        let previous_secret = match (prev_id, prev_ct, prev_exp) {
            (Some(id), Some(ct), Some(exp)) if from_naive(exp) > now => keyring
                .decrypt(&id, &ct, &secret_aad(&client_id))
                .ok()
                .map(|s| (s, from_naive(exp))),
            _ => None,
        };
        keys.push(ActiveKey {
            merchant_id: r.try_get("merchant_id")?,
            role,
            secret,
            previous_secret,
            rate_per_second: r.try_get("rate_per_second")?,
            rate_burst: r.try_get("rate_burst")?,
            client_id,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_merchant_key_cannot_take_the_platforms_identity() {
        for name in ["PLATFORM", "platform", "Platform"] {
            assert!(
                matches!(
                    merchant_for(name, Role::Merchant),
                    Err(CreateKeyError::ReservedName)
                ),
                "{name}"
            );
        }
        assert_eq!(
            merchant_for("platform", Role::Admin).ok().as_deref(),
            Some(PLATFORM_MERCHANT)
        );
        assert_eq!(
            merchant_for("tokopedia", Role::Merchant).ok().as_deref(),
            Some("tokopedia")
        );
    }
}
