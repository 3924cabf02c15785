//! Request signatures (SPEC §2): the canonical string and HMAC-SHA256 over it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far `X-Timestamp` may be from the server clock, either way.
pub(crate) const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The five lines of SPEC §2 joined by `\n`, no trailing newline.
pub fn string_to_sign(
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    external_id: Option<&str>,
    body: &[u8],
) -> String {
    format!(
        "{method}\n{path_and_query}\n{timestamp}\n{}\n{}",
        external_id.unwrap_or(""),
        sha256_hex(body)
    )
}

/// Lowercase hex HMAC-SHA256(secret, string_to_sign).
pub fn sign(secret: &[u8], string_to_sign: &str) -> String {
    hex::encode(mac(secret, string_to_sign).finalize().into_bytes())
}

fn mac(secret: &[u8], string_to_sign: &str) -> HmacSha256 {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(string_to_sign.as_bytes());
    mac
}

/// Whether `provided` is the lowercase hex signature of `string_to_sign` under `secret`.
/// Uppercase hex is rejected; the comparison is constant time.
pub fn verify(secret: &[u8], string_to_sign: &str, provided: &str) -> bool {
    if provided.len() != 64
        || !provided
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return false;
    }
    let Ok(bytes) = hex::decode(provided) else {
        return false;
    };
    mac(secret, string_to_sign).verify_slice(&bytes).is_ok()
}

/// `X-External-Id`: 1–128 visible ASCII characters (0x21–0x7E).
pub fn is_valid_external_id(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Parses `X-Timestamp` (a decimal integer) and checks it is within the allowed skew.
pub fn timestamp_within_window(value: &str, now_unix: i64) -> Result<(), TimestampError> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TimestampError::Malformed);
    }
    let ts: i64 = value.parse().map_err(|_| TimestampError::Malformed)?;
    if (ts - now_unix).abs() > MAX_CLOCK_SKEW_SECS {
        return Err(TimestampError::OutOfWindow);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("X-Timestamp must be unix seconds as a decimal integer")]
    Malformed,
    #[error("X-Timestamp is more than 300 seconds from the server clock")]
    OutOfWindow,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"demo-secret-please-rotate";
    const BODY: &[u8] = br#"{"user_id":"USR_01","otr":1000,"admin_fee":100,"harga_aset":900,"bunga_persen":2.5,"tenor":3,"nama_aset":"Kulkas 2 Pintu"}"#;
    const EXPECTED_POST: &str = "071311ecd312ec92be58d53da9aa93048e25d1ecefe60a3539a1acff2722afe0";
    const EXPECTED_GET: &str = "3442196c82a83947e86c34b32ea2c3db1b0dc994b494696c57aec63170dca447";

    fn post_sts() -> String {
        string_to_sign(
            "POST",
            "/transaction",
            "1700000000",
            Some("ORDER-0001"),
            BODY,
        )
    }

    #[test]
    fn spec_body_hash() {
        assert_eq!(
            sha256_hex(BODY),
            "be8d5fd78c8512956bf8e70ef11fa396c95634b828a477d5edebe70593c42a0c"
        );
    }

    #[test]
    fn spec_post_vector() {
        assert_eq!(sign(SECRET, &post_sts()), EXPECTED_POST);
        assert!(verify(SECRET, &post_sts(), EXPECTED_POST));
    }

    #[test]
    fn spec_get_vector() {
        let sts = string_to_sign("GET", "/status/API_CALL_X", "1700000000", None, b"");
        assert_eq!(sign(SECRET, &sts), EXPECTED_GET);
        assert!(verify(SECRET, &sts, EXPECTED_GET));
    }

    #[test]
    fn canonical_string_layout() {
        let sts = string_to_sign("GET", "/a?b=1", "1", None, b"");
        assert_eq!(
            sts,
            "GET\n/a?b=1\n1\n\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn uppercase_hex_is_rejected() {
        assert!(!verify(SECRET, &post_sts(), &EXPECTED_POST.to_uppercase()));
    }

    #[test]
    fn every_tampered_field_fails() {
        let tampered = [
            string_to_sign(
                "GET",
                "/transaction",
                "1700000000",
                Some("ORDER-0001"),
                BODY,
            ),
            string_to_sign(
                "POST",
                "/transaction?x=1",
                "1700000000",
                Some("ORDER-0001"),
                BODY,
            ),
            string_to_sign(
                "POST",
                "/transactions",
                "1700000000",
                Some("ORDER-0001"),
                BODY,
            ),
            string_to_sign(
                "POST",
                "/transaction",
                "1700000001",
                Some("ORDER-0001"),
                BODY,
            ),
            string_to_sign(
                "POST",
                "/transaction",
                "1700000000",
                Some("ORDER-0002"),
                BODY,
            ),
            string_to_sign("POST", "/transaction", "1700000000", None, BODY),
            string_to_sign(
                "POST",
                "/transaction",
                "1700000000",
                Some("ORDER-0001"),
                b"{}",
            ),
        ];
        for sts in tampered {
            assert!(!verify(SECRET, &sts, EXPECTED_POST), "{sts}");
        }
        assert!(!verify(b"another-secret", &post_sts(), EXPECTED_POST));
        assert!(!verify(SECRET, &post_sts(), &EXPECTED_POST[..63]));
        assert!(!verify(SECRET, &post_sts(), ""));
        assert!(!verify(SECRET, &post_sts(), &format!("{EXPECTED_POST}00")));
    }

    #[test]
    fn external_id_rules() {
        assert!(is_valid_external_id("ORDER-0001"));
        assert!(is_valid_external_id(&"x".repeat(128)));
        assert!(is_valid_external_id("!~"));
        assert!(!is_valid_external_id(""));
        assert!(!is_valid_external_id(&"x".repeat(129)));
        assert!(!is_valid_external_id("a b"));
        assert!(!is_valid_external_id("é"));
        assert!(!is_valid_external_id("a\tb"));
    }

    #[test]
    fn timestamp_window() {
        let now = 1_700_000_000;
        assert_eq!(timestamp_within_window("1700000299", now), Ok(()));
        assert_eq!(timestamp_within_window("1699999701", now), Ok(()));
        assert_eq!(timestamp_within_window("1700000300", now), Ok(()));
        assert_eq!(
            timestamp_within_window("1700000301", now),
            Err(TimestampError::OutOfWindow)
        );
        assert_eq!(
            timestamp_within_window("1699999699", now),
            Err(TimestampError::OutOfWindow)
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "+1700000000",
            " 1700000000",
            "99999999999999999999",
        ] {
            assert_eq!(
                timestamp_within_window(bad, now),
                Err(TimestampError::Malformed),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn a_signature_verifies_only_its_own_string(a in ".{0,40}", b in ".{0,40}") {
            let sig = sign(SECRET, &a);
            prop_assert!(verify(SECRET, &a, &sig));
            if a != b {
                prop_assert!(!verify(SECRET, &b, &sig));
            }
        }

        #[test]
        fn verify_never_panics(provided in ".{0,80}") {
            let _ = verify(SECRET, "x", &provided);
        }
    }
}
