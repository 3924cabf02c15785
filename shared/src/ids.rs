//! Identifiers: time-ordered api call ids and rows written at volume, fully random ids for
//! users and keys.

use uuid::Uuid;

/// `API_CALL_` + a UUIDv7 in lowercase hex: unique, and ordered by creation time (within one
/// process strictly, across processes to the millisecond).
pub fn new_api_call_id() -> String {
    format!("API_CALL_{}", Uuid::now_v7().simple())
}

/// Prefix + 122 random bits (UUIDv4): ids that cannot be guessed or enumerated.
fn random_id(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::new_v4().simple())
}

/// Prefix + UUIDv7: a 48-bit millisecond timestamp then 74 random bits, so still not
/// guessable, and inserted in time order: the B-trees of the tables written at volume
/// (contracts, installments, bills) grow at their right edge instead of dirtying a random
/// page per row, which keeps the working set in the buffer pool as the tables grow.
fn ordered_id(prefix: &str) -> String {
    format!("{prefix}{}", Uuid::now_v7().simple())
}

pub fn new_user_id() -> String {
    random_id("USR_")
}

pub fn new_contract_number() -> String {
    ordered_id("KTR_")
}

pub fn new_billing_id() -> String {
    ordered_id("BIL_")
}

pub fn new_payment_code() -> String {
    ordered_id("PAY_")
}

pub fn new_refund_code() -> String {
    ordered_id("RFD_")
}

pub fn new_client_id() -> String {
    random_id("ck_")
}

/// An id in a URL path: ASCII letters, digits, `_` and `-`, 1–64 characters. Anything else
/// cannot name a row, so it is answered 404 without a query.
pub fn is_plausible_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_call_ids_are_ordered_and_unique() {
        let ids: Vec<String> = (0..10_000).map(|_| new_api_call_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(
            ids.iter()
                .all(|id| id.starts_with("API_CALL_") && id.len() == 41)
        );
    }

    #[test]
    fn resource_ids_have_prefixes() {
        assert!(new_user_id().starts_with("USR_"));
        assert!(is_plausible_id(&new_contract_number()));
        assert!(!is_plausible_id("a/b"));
        assert!(!is_plausible_id(""));
    }
}
