//! Lanes: a consumer's batch split by user into groups that are applied side by side, each in
//! its own MySQL transaction.
//!
//! A batch locks the limits rows of all its users first and holds them until it commits, so
//! two concurrent batches that share a user run one after the other. With a few hundred
//! active users two batches of 32 nearly always share one: in a closed-loop burst of 6000
//! requests (`loadgen run --requests 6000`), batches waited 25 ms for locks out of ~38. Lanes
//! never share a user, so the transactions of one consumer never wait for each other.

use shared::db::contracts::owners_of;
use shared::ids::is_plausible_id;
use shared::messages::{Command, Subject};
use sqlx::MySqlPool;
use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

/// How many lanes a batch of `commands` is split into: one per `batch_size` commands, at most
/// `lanes`. A batch that one transaction holds stays one transaction: at a moderate rate
/// batches are small, nothing waits for locks, and splitting would only add statements and
/// commits.
pub(crate) fn lanes_for(commands: usize, batch_size: usize, lanes: usize) -> usize {
    commands.div_ceil(batch_size.max(1)).clamp(1, lanes.max(1))
}

/// The lane of a user (or, for a payment on a contract nobody owns, of the contract number).
/// Only needs to be stable within a process: `DefaultHasher::new` has fixed keys.
pub(crate) fn lane_of(key: &str, lanes: usize) -> usize {
    if lanes <= 1 {
        return 0;
    }
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// Groups `items` into at most `lanes` lanes so that no user's commands are in two of them: a
/// transaction goes by its user, a payment or a refund by the owner of its contract
/// (`owners`, by contract number; one not found goes by its number). Order within a lane is kept; empty
/// lanes are left out.
pub(crate) fn assign<T>(
    items: Vec<T>,
    command: impl Fn(&T) -> &Command,
    owners: &BTreeMap<String, String>,
    lanes: usize,
) -> Vec<Vec<T>> {
    let lanes = lanes.max(1);
    let mut out: Vec<Vec<T>> = (0..lanes).map(|_| Vec::new()).collect();
    for item in items {
        let key = match command(&item).payload.subject() {
            Subject::User(user) => user,
            Subject::Contract(nomor) => owners.get(nomor).map_or(nomor, String::as_str),
        };
        out[lane_of(key, lanes)].push(item);
    }
    out.retain(|lane| !lane.is_empty());
    out
}

/// [`assign`], reading the owners of the batch's paid contracts first. When that read fails,
/// payments go by contract number: a payment may then wait for another lane's locks, which
/// costs time, never correctness (each transaction still locks every user it touches).
pub async fn split<T>(
    pool: &MySqlPool,
    items: Vec<T>,
    command: impl Fn(&T) -> &Command,
    lanes: usize,
) -> Vec<Vec<T>> {
    if lanes <= 1 {
        return vec![items];
    }
    let contracts: Vec<&str> = items
        .iter()
        .filter_map(|i| command(i).payload.nomor_kontrak())
        .filter(|n| is_plausible_id(n))
        .collect();
    let owners = match owners_of(pool, contracts).await {
        Ok(owners) => owners,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the owners of paid contracts; payments go to lanes by contract");
            BTreeMap::new()
        }
    };
    assign(items, command, &owners, lanes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use shared::contract::{ContractTerms, Tenor};
    use shared::messages::{
        COMMAND_SCHEMA_VERSION, CommandPayload, PaymentPayload, TransactionPayload,
    };
    use shared::money::{Money, Rate};

    fn command(payload: CommandPayload) -> Command {
        Command {
            v: COMMAND_SCHEMA_VERSION,
            api_call_id: shared::ids::new_api_call_id(),
            merchant_id: "m".into(),
            client_id: "ck_1".into(),
            external_id: shared::ids::new_api_call_id(),
            body_sha256: "00".repeat(32),
            accepted_at: Utc::now(),
            reply_to: None,
            payload,
        }
    }

    fn transaction(user: &str) -> Command {
        command(CommandPayload::Transaction(TransactionPayload {
            user_id: user.into(),
            terms: ContractTerms {
                otr: Money::from_cents(100_000),
                admin_fee: Money::ZERO,
                harga_aset: Money::from_cents(100_000),
                bunga_persen: Rate::parse_json("2.5").expect("valid"),
                tenor: Tenor::One,
            },
            nama_aset: "x".into(),
        }))
    }

    fn payment(contract: &str) -> Command {
        command(CommandPayload::Payment(PaymentPayload {
            nomor_kontrak: contract.into(),
            jumlah: Money::ZERO,
        }))
    }

    fn user_of(c: &Command, owners: &BTreeMap<String, String>) -> String {
        match c.payload.subject() {
            Subject::User(user) => user.to_owned(),
            Subject::Contract(nomor) => owners
                .get(nomor)
                .cloned()
                .unwrap_or_else(|| nomor.to_owned()),
        }
    }

    #[test]
    fn no_user_is_in_two_lanes_and_a_payment_joins_its_owners_lane() {
        let users: Vec<String> = (0..50).map(|i| format!("USR{i:04}")).collect();
        let owners: BTreeMap<String, String> = (0..50)
            .map(|i| (format!("KTR{i:04}"), users[(i * 7) % 50].clone()))
            .collect();
        let mut items: Vec<Command> = Vec::new();
        for round in 0..3 {
            for (i, u) in users.iter().enumerate() {
                items.push(transaction(u));
                if (i + round) % 4 == 0 {
                    items.push(payment(&format!("KTR{i:04}")));
                }
            }
        }
        items.push(payment("KTR-UNKNOWN"));
        let total = items.len();
        let lanes = assign(items, |c| c, &owners, 3);
        assert_eq!(lanes.len(), 3, "150+ commands of 50 users fill 3 lanes");
        assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), total);
        let mut lane_of_user: BTreeMap<String, usize> = BTreeMap::new();
        for (n, lane) in lanes.iter().enumerate() {
            for c in lane {
                let user = user_of(c, &owners);
                let seen = *lane_of_user.entry(user.clone()).or_insert(n);
                assert_eq!(seen, n, "{user} is in lanes {seen} and {n}");
            }
        }
    }

    #[test]
    fn a_batch_gets_a_lane_per_batch_size_up_to_the_lanes() {
        assert_eq!(lanes_for(0, 32, 4), 1);
        assert_eq!(lanes_for(1, 32, 4), 1);
        assert_eq!(lanes_for(32, 32, 4), 1);
        assert_eq!(lanes_for(33, 32, 4), 2);
        assert_eq!(lanes_for(100, 32, 4), 4);
        assert_eq!(lanes_for(1000, 32, 4), 4);
        assert_eq!(lanes_for(1000, 32, 1), 1);
        assert_eq!(lanes_for(10, 0, 0), 1);
    }

    #[test]
    fn order_within_a_lane_is_kept_and_one_lane_is_the_batch_itself() {
        let items: Vec<(Command, usize)> = (0..20)
            .map(|i| (transaction(&format!("USR{:04}", i % 5)), i))
            .collect();
        let lanes = assign(items.clone(), |(c, _)| c, &BTreeMap::new(), 1);
        assert_eq!(lanes.len(), 1);
        let order: Vec<usize> = lanes[0].iter().map(|(_, i)| *i).collect();
        assert_eq!(order, (0..20).collect::<Vec<_>>());
        for lane in assign(items, |(c, _)| c, &BTreeMap::new(), 4) {
            let order: Vec<usize> = lane.iter().map(|(_, i)| *i).collect();
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(order, sorted, "a lane keeps the batch's order");
        }
    }
}
