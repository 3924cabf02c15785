//! Merchants and their API keys. Secrets are stored encrypted under a master key; the
//! plaintext exists only in the one line `xyzctl keys create` prints and in ingress memory.

use super::{DbError, from_naive, to_naive};
use crate::crypto::Keyring;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlPool, Row};

/// The merchant every admin key belongs to.
pub const PLATFORM_MERCHANT: &str = "PLATFORM";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub client_id: String,
    pub merchant_id: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    pub revoked_at: Option<String>,
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
    let now = to_naive(Utc::now());
    let (key_id, ciphertext) = keyring
        .encrypt(secret.as_bytes(), &secret_aad(client_id))
        .map_err(|e| DbError::Corrupt(e.to_string()))?;
    let mut tx = pool.begin().await?;
    sqlx::query("INSERT IGNORE INTO merchants (merchant_id, created_at) VALUES (?, ?)")
        .bind(&merchant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO api_keys (client_id, merchant_id, name, role, secret_key_id, secret_ciphertext, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(client_id)
    .bind(&merchant_id)
    .bind(name)
    .bind(role.as_str())
    .bind(key_id)
    .bind(ciphertext)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(merchant_id)
}

/// Replaces a key's secret; the previous one keeps verifying until `grace_until`.
pub async fn rotate_secret(
    pool: &MySqlPool,
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
    .execute(pool)
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
    let done = sqlx::query(
        "UPDATE api_keys SET rate_per_second = ?, rate_burst = ?, updated_at = ? WHERE client_id = ? AND revoked_at IS NULL",
    )
    .bind(per_second)
    .bind(burst)
    .bind(to_naive(Utc::now()))
    .bind(client_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn list_keys(pool: &MySqlPool) -> Result<Vec<KeyInfo>, DbError> {
    let rows = sqlx::query(
        "SELECT client_id, merchant_id, name, role, created_at, revoked_at FROM api_keys ORDER BY created_at, client_id",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
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
            })
        })
        .collect()
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
