//! Commands the ingress publishes and the workers consume.

use crate::contract::ContractTerms;
use crate::money::Money;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; workers dead-letter versions they do not know.
pub const COMMAND_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionPayload {
    pub user_id: String,
    #[serde(flatten)]
    pub terms: ContractTerms,
    pub nama_aset: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentPayload {
    pub nomor_kontrak: String,
    pub jumlah: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayload {
    pub nomor_kontrak: String,
    pub jumlah: Money,
    pub alasan: String,
}

/// A new variant is a compatible change: a worker that does not know it dead-letters the
/// command as undecodable, so workers are upgraded before ingresses send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommandPayload {
    Transaction(TransactionPayload),
    Payment(PaymentPayload),
    Refund(RefundPayload),
}

impl CommandPayload {
    pub fn call_type(&self) -> CallType {
        match self {
            CommandPayload::Transaction(_) => CallType::Transaction,
            CommandPayload::Payment(_) => CallType::Payment,
            CommandPayload::Refund(_) => CallType::Refund,
        }
    }

    /// What the command acts on: a transaction its user, a payment or a refund its contract.
    pub fn subject(&self) -> Subject<'_> {
        match self {
            CommandPayload::Transaction(t) => Subject::User(&t.user_id),
            CommandPayload::Payment(p) => Subject::Contract(&p.nomor_kontrak),
            CommandPayload::Refund(r) => Subject::Contract(&r.nomor_kontrak),
        }
    }

    /// The contract a payment or a refund names.
    pub fn nomor_kontrak(&self) -> Option<&str> {
        match self.subject() {
            Subject::User(_) => None,
            Subject::Contract(nomor) => Some(nomor),
        }
    }
}

/// What a command acts on, as named in it (not yet looked up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    User(&'a str),
    Contract(&'a str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CallType {
    Transaction,
    Payment,
    Refund,
}

impl CallType {
    pub fn as_str(self) -> &'static str {
        match self {
            CallType::Transaction => "TRANSACTION",
            CallType::Payment => "PAYMENT",
            CallType::Refund => "REFUND",
        }
    }

    /// The endpoint name external ids are scoped to.
    pub fn endpoint(self) -> &'static str {
        match self {
            CallType::Transaction => "transaction",
            CallType::Payment => "payment",
            CallType::Refund => "refund",
        }
    }

    pub fn parse(s: &str) -> Option<CallType> {
        match s {
            "TRANSACTION" => Some(CallType::Transaction),
            "PAYMENT" => Some(CallType::Payment),
            "REFUND" => Some(CallType::Refund),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub v: u32,
    pub api_call_id: String,
    pub merchant_id: String,
    pub client_id: String,
    pub external_id: String,
    pub body_sha256: String,
    /// The instant the ingress accepted the call: the contract or payment date.
    pub accepted_at: DateTime<Utc>,
    /// The Redis channel of an ingress holding a `Prefer: wait` request for this call.
    pub reply_to: Option<String>,
    #[serde(flatten)]
    pub payload: CommandPayload,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("undecodable command: {0}")]
    Malformed(String),
    #[error("unknown command schema version {0}")]
    UnknownVersion(u64),
}

impl Command {
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs of strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a delivery. The version is checked first so a future schema is reported as
    /// such rather than as garbage.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        #[derive(Deserialize)]
        struct Versioned {
            v: u64,
        }
        let versioned: Versioned =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if versioned.v != u64::from(COMMAND_SCHEMA_VERSION) {
            return Err(DecodeError::UnknownVersion(versioned.v));
        }
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// The body of one broker message carrying several encoded commands: a JSON array of them.
/// One command travels as itself (the object), so a single command's message is unchanged.
/// The ingress groups the commands of concurrent requests this way: the broker's cost is per
/// message (a Raft entry, a delivery, a settlement), not per byte.
pub fn encode_group(mut encoded: Vec<Vec<u8>>) -> Vec<u8> {
    if encoded.len() == 1 {
        return encoded.pop().unwrap_or_default();
    }
    let mut body = Vec::with_capacity(encoded.iter().map(|e| e.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, command) in encoded.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(command);
    }
    body.push(b']');
    body
}

/// Every command of a message body: one command object, or a non-empty array of them. Any
/// undecodable command makes the whole message undecodable.
pub fn decode_group(bytes: &[u8]) -> Result<Vec<Command>, DecodeError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'[') {
        return Command::decode(bytes).map(|c| vec![c]);
    }
    let items: Vec<&serde_json::value::RawValue> =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if items.is_empty() {
        return Err(DecodeError::Malformed("an empty group of commands".into()));
    }
    items
        .into_iter()
        .map(|raw| Command::decode(raw.get().as_bytes()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Tenor;
    use crate::money::Rate;

    fn sample() -> Command {
        Command {
            v: COMMAND_SCHEMA_VERSION,
            api_call_id: "API_CALL_1".into(),
            merchant_id: "m".into(),
            client_id: "ck_1".into(),
            external_id: "e".into(),
            body_sha256: "00".into(),
            accepted_at: Utc::now(),
            reply_to: None,
            payload: CommandPayload::Transaction(TransactionPayload {
                user_id: "USR_1".into(),
                terms: ContractTerms {
                    otr: Money::from_cents(100_000),
                    admin_fee: Money::from_cents(10_000),
                    harga_aset: Money::from_cents(90_000),
                    bunga_persen: Rate::parse_json("2.5").expect("valid"),
                    tenor: Tenor::Three,
                },
                nama_aset: "Kulkas".into(),
            }),
        }
    }

    #[test]
    fn round_trips() {
        let c = sample();
        assert_eq!(Command::decode(&c.encode()).expect("decodes"), c);
    }

    #[test]
    fn groups_round_trip_and_a_single_command_travels_as_itself() {
        let one = sample();
        assert_eq!(encode_group(vec![one.encode()]), one.encode());
        assert_eq!(
            decode_group(&one.encode()).expect("decodes"),
            vec![one.clone()]
        );
        let mut two = sample();
        two.api_call_id = "API_CALL_2".into();
        two.payload = CommandPayload::Payment(PaymentPayload {
            nomor_kontrak: "KTR_1".into(),
            jumlah: Money::from_cents(5_000),
        });
        let mut three = sample();
        three.api_call_id = "API_CALL_3".into();
        three.payload = CommandPayload::Refund(RefundPayload {
            nomor_kontrak: "KTR_1".into(),
            jumlah: Money::from_cents(50_000),
            alasan: "barang dikembalikan".into(),
        });
        let body = encode_group(vec![one.encode(), two.encode(), three.encode()]);
        assert_eq!(body.first(), Some(&b'['));
        assert_eq!(decode_group(&body).expect("decodes"), vec![one, two, three]);
    }

    #[test]
    fn a_group_with_any_bad_command_is_undecodable() {
        let good = sample().encode();
        let mut bad: serde_json::Value = serde_json::from_slice(&good).expect("json");
        bad["v"] = 9.into();
        let body = encode_group(vec![good.clone(), bad.to_string().into_bytes()]);
        assert!(matches!(
            decode_group(&body),
            Err(DecodeError::UnknownVersion(9))
        ));
        assert!(matches!(
            decode_group(b"[]"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_group(b"[{\"v\":1}"),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode_group(b"  [1, 2]"),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[test]
    fn rejects_unknown_versions_and_types() {
        let mut json: serde_json::Value = serde_json::from_slice(&sample().encode()).expect("json");
        json["v"] = 2.into();
        assert!(matches!(
            Command::decode(json.to_string().as_bytes()),
            Err(DecodeError::UnknownVersion(2))
        ));
        json["v"] = 1.into();
        json["type"] = "CHARGEBACK".into();
        assert!(matches!(
            Command::decode(json.to_string().as_bytes()),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            Command::decode(b"\x00garbage"),
            Err(DecodeError::Malformed(_))
        ));
    }
}
