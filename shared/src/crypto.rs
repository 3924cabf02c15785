//! Encryption at rest: AES-256-GCM under named master keys (so they can rotate), and the
//! keyed blind index that makes NIK uniqueness checkable without the plaintext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::fmt;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("master key list is malformed: {0}")]
    BadKeyList(String),
    #[error("unknown master key id `{0}`")]
    UnknownKey(String),
    #[error("ciphertext does not authenticate")]
    Decrypt,
    #[error("random number generator failed")]
    Random,
}

const NONCE_LEN: usize = 12;

/// The master keys by id, the one new data is encrypted under, and the blind-index key.
#[derive(Clone)]
pub struct Keyring {
    keys: HashMap<String, Aes256Gcm>,
    active: String,
    blind_index_key: Vec<u8>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// `keys` is `id=base64(32 bytes)` entries separated by commas; `active` names one of them.
    pub fn from_config(
        keys: &str,
        active: &str,
        blind_index_key: &str,
    ) -> Result<Keyring, CryptoError> {
        let mut map = HashMap::new();
        for entry in keys.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, material) = entry.split_once('=').ok_or_else(|| {
                CryptoError::BadKeyList(format!(
                    "entry without `=`: key id {}",
                    entry.split('=').next().unwrap_or("")
                ))
            })?;
            let bytes = B64
                .decode(material.trim())
                .map_err(|_| CryptoError::BadKeyList(format!("key `{id}` is not base64")))?;
            if bytes.len() != 32 {
                return Err(CryptoError::BadKeyList(format!(
                    "key `{id}` must be 32 bytes"
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes)
                .map_err(|_| CryptoError::BadKeyList(format!("key `{id}` must be 32 bytes")))?;
            map.insert(id.trim().to_owned(), cipher);
        }
        if !map.contains_key(active) {
            return Err(CryptoError::UnknownKey(active.to_owned()));
        }
        let blind = B64
            .decode(blind_index_key.trim())
            .map_err(|_| CryptoError::BadKeyList("blind index key is not base64".into()))?;
        if blind.len() < 32 {
            return Err(CryptoError::BadKeyList(
                "blind index key must be at least 32 bytes".into(),
            ));
        }
        Ok(Keyring {
            keys: map,
            active: active.to_owned(),
            blind_index_key: blind,
        })
    }

    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Encrypts under the active key; `aad` binds the ciphertext to its purpose and row.
    pub(crate) fn encrypt(
        &self,
        plaintext: &[u8],
        aad: &[u8],
    ) -> Result<(String, Vec<u8>), CryptoError> {
        let cipher = self
            .keys
            .get(&self.active)
            .ok_or_else(|| CryptoError::UnknownKey(self.active.clone()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CryptoError::Decrypt)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok((self.active.clone(), out))
    }

    pub(crate) fn decrypt(
        &self,
        key_id: &str,
        data: &[u8],
        aad: &[u8],
    ) -> Result<Vec<u8>, CryptoError> {
        let cipher = self
            .keys
            .get(key_id)
            .ok_or_else(|| CryptoError::UnknownKey(key_id.to_owned()))?;
        if data.len() < NONCE_LEN {
            return Err(CryptoError::Decrypt);
        }
        let (nonce, ct) = data.split_at(NONCE_LEN);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Decrypt)
    }

    /// HMAC-SHA256(blind index key, purpose || 0 || value).
    pub fn blind_index(&self, purpose: &str, value: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&self.blind_index_key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(purpose.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// 32 random bytes, base64url without padding: API key secrets.
pub fn random_token(bytes: usize) -> Result<String, CryptoError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| CryptoError::Random)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(active: &str) -> Keyring {
        let k1 = B64.encode([1u8; 32]);
        let k2 = B64.encode([2u8; 32]);
        Keyring::from_config(&format!("k1={k1},k2={k2}"), active, &B64.encode([9u8; 32]))
            .expect("valid")
    }

    #[test]
    fn round_trips_and_binds_aad() {
        let r = ring("k1");
        let (id, ct) = r.encrypt(b"3201234567890001", b"nik").expect("encrypts");
        assert_eq!(id, "k1");
        assert!(!ct.windows(16).any(|w| w == b"3201234567890001"));
        assert_eq!(
            r.decrypt(&id, &ct, b"nik").expect("decrypts"),
            b"3201234567890001"
        );
        assert!(r.decrypt(&id, &ct, b"other").is_err());
        assert!(r.decrypt("k2", &ct, b"nik").is_err());
        let mut tampered = ct.clone();
        tampered[20] ^= 1;
        assert!(r.decrypt(&id, &tampered, b"nik").is_err());
    }

    #[test]
    fn old_keys_still_decrypt_after_rotation() {
        let (id, ct) = ring("k1").encrypt(b"x", b"a").expect("encrypts");
        let rotated = ring("k2");
        assert_eq!(rotated.decrypt(&id, &ct, b"a").expect("decrypts"), b"x");
        assert_eq!(rotated.encrypt(b"x", b"a").expect("encrypts").0, "k2");
    }

    #[test]
    fn blind_index_is_keyed_and_stable() {
        let r = ring("k1");
        assert_eq!(r.blind_index("nik", "1"), r.blind_index("nik", "1"));
        assert_ne!(r.blind_index("nik", "1"), r.blind_index("nik", "2"));
        assert_ne!(r.blind_index("nik", "1"), r.blind_index("other", "1"));
    }

    #[test]
    fn rejects_bad_key_lists() {
        assert!(Keyring::from_config("k1=short", "k1", &B64.encode([9u8; 32])).is_err());
        assert!(Keyring::from_config("", "k1", &B64.encode([9u8; 32])).is_err());
        let k1 = B64.encode([1u8; 32]);
        assert!(Keyring::from_config(&format!("k1={k1}"), "k2", &B64.encode([9u8; 32])).is_err());
        assert!(Keyring::from_config(&format!("k1={k1}"), "k1", "c2hvcnQ=").is_err());
    }
}
