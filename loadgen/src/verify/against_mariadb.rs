//! The verifier's SQL against a real database: a run's worth of rows written by the worker's
//! own unit of work (`worker::unit::apply_batch`), `shared`'s limit changes and close of
//! business, then `verify` finds nothing; then it finds each break made on purpose. It needs
//! MariaDB, so it is ignored unless asked for:
//! `DATABASE_URL=mysql://root@127.0.0.1:3306/xyz_test cargo nextest run -p loadgen --run-ignored only`

use super::*;
use crate::run::{CallRecord, FinalSeen, Kind, LimitPatch, PatchOutcome};
use chrono::Utc;
use shared::contract::{ContractTerms, Tenor};
use shared::db::cob::{CobOptions, close_through};
use shared::db::limit_changes::{ChangedBy, LimitsChanged, change_limits};
use shared::messages::{
    COMMAND_SCHEMA_VERSION, Command, CommandPayload, PaymentPayload, TransactionPayload,
};
use shared::money::{Money, Rate};
use worker::unit::{apply_batch, lock_order};

async fn seed(pool: &MySqlPool, ids: &[String], limit: Decimal) {
    let now = Utc::now().naive_utc();
    for id in ids {
        sqlx::query(
            "INSERT INTO users (user_id, user_status, nik_ciphertext, nik_key_id, nik_blind_index, nik_masked,
                full_name, legal_name, tempat_lahir, tanggal_lahir, gaji, foto_ktp, foto_selfie,
                created_by, api_call_id, created_at, updated_at) VALUES (?, 'ACTIVE', ?, 'k', ?, '3201********0001', 'A', 'A', 'B', '1990-01-15', 1, 'https://x/k', 'https://x/s', 'seed', ?, ?, ?)",
        )
        .bind(id)
        .bind(vec![0u8; 44])
        .bind(uuid::Uuid::new_v4().as_bytes().to_vec())
        .bind(format!("API_CALL_seed_{id}"))
        .bind(now)
        .bind(now)
        .execute(pool)
        .await
        .expect("user");
        sqlx::query(
            "INSERT INTO user_limit_balances (user_id, limit_one_month, limit_two_month, limit_three_month, limit_sixth,
                available_one_month, available_two_month, available_three_month, available_sixth, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(limit)
        .bind(limit)
        .bind(limit)
        .bind(limit)
        .bind(limit)
        .bind(limit)
        .bind(limit)
        .bind(limit)
        .bind(now)
        .execute(pool)
        .await
        .expect("limits");
    }
}

fn cmd(external_id: String, payload: CommandPayload) -> Command {
    Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: shared::ids::new_api_call_id(),
        merchant_id: "m".into(),
        client_id: "ck".into(),
        body_sha256: shared::signature::sha256_hex(external_id.as_bytes()),
        external_id,
        accepted_at: Utc::now(),
        reply_to: None,
        payload,
    }
}

fn tx(n: usize, user: &str, tenor: Tenor, otr_cents: i64) -> Command {
    cmd(
        format!("T-{n}"),
        CommandPayload::Transaction(TransactionPayload {
            user_id: user.into(),
            terms: ContractTerms {
                otr: Money::from_cents(otr_cents),
                admin_fee: Money::from_cents(10_000),
                harga_aset: Money::from_cents(otr_cents),
                bunga_persen: Rate::parse_json("2.5").expect("rate"),
                tenor,
            },
            nama_aset: "Kulkas".into(),
        }),
    )
}

fn pay(n: usize, nk: &str, cents: i64) -> Command {
    cmd(
        format!("P-{n}"),
        CommandPayload::Payment(PaymentPayload {
            nomor_kontrak: nk.into(),
            jumlah: Money::from_cents(cents),
        }),
    )
}

async fn apply(pool: &MySqlPool, commands: &[Command]) {
    let mut refs: Vec<&Command> = commands.iter().collect();
    refs.sort_by_key(|c| lock_order(c));
    apply_batch(pool, &refs).await.expect("batch");
}

async fn contracts(pool: &MySqlPool) -> Vec<(String, i64)> {
    sqlx::query("SELECT nomor_kontrak, cicilan_bulanan FROM transactions ORDER BY nomor_kontrak")
        .fetch_all(pool)
        .await
        .expect("contracts")
        .iter()
        .map(|r| {
            let c: Decimal = r.get("cicilan_bulanan");
            (
                r.get("nomor_kontrak"),
                (c * Decimal::ONE_HUNDRED).try_into().unwrap_or(0i64),
            )
        })
        .collect()
}

async fn change(
    pool: &MySqlPool,
    n: usize,
    user: &str,
    requested: Vec<(Tenor, Money)>,
) -> LimitPatch {
    let call = format!("API_CALL_LC{n}");
    let by = ChangedBy {
        api_call_id: &call,
        client_id: "ck_admin",
    };
    let outcome = match change_limits(pool, user, &requested, &by, Utc::now())
        .await
        .expect("change")
    {
        LimitsChanged::Applied(_) => PatchOutcome::Applied { api_call_id: call },
        LimitsChanged::BelowUsed(_) => PatchOutcome::BelowUsed { api_call_id: call },
        LimitsChanged::NoSuchUser => panic!("no user"),
    };
    LimitPatch {
        user_id: user.into(),
        requested,
        outcome,
    }
}

/// The run's calls, as the loadgen would have them, from async_outcomes.
async fn calls(
    pool: &MySqlPool,
    users_of: &HashMap<String, String>,
) -> (Vec<CallRecord>, HashMap<String, FinalSeen>) {
    let mut records = Vec::new();
    let mut finals = HashMap::new();
    for r in sqlx::query(
        "SELECT api_call_id, external_id, call_type, status, reason, result FROM async_outcomes",
    )
    .fetch_all(pool)
    .await
    .expect("outcomes")
    {
        let id: String = r.get("api_call_id");
        let kind = Kind::parse(&r.get::<String, _>("call_type")).expect("kind");
        let mut rec = CallRecord::new(kind, r.get("external_id"));
        rec.api_call_id = Some(id.clone());
        rec.user_id = users_of.get(&id).cloned();
        let result: Option<String> = r.get("result");
        let result: serde_json::Value = result
            .map(|s| serde_json::from_str(&s).expect("json"))
            .unwrap_or_default();
        let resource = match kind {
            Kind::Transaction => "nomor_kontrak",
            Kind::Payment => "kode_bayar",
            Kind::Refund => "kode_refund",
        };
        rec.nomor_kontrak = result["nomor_kontrak"].as_str().map(str::to_owned);
        finals.insert(
            id,
            FinalSeen {
                state: r.get("status"),
                reason: r.get("reason"),
                completed_at: None,
                seen_at: Utc::now(),
                resource_id: result[resource].as_str().map(str::to_owned),
            },
        );
        records.push(rec);
    }
    (records, finals)
}

#[sqlx::test(migrations = "../migrations")]
#[ignore = "needs MariaDB at DATABASE_URL"]
async fn the_verifier_holds_after_payments_limit_changes_and_a_close_of_business(pool: MySqlPool) {
    let users: Vec<String> = (0..3).map(|i| format!("USR_lgtest_{i}")).collect();
    let created = Decimal::new(100_000_000, 2); // 1,000,000.00
    seed(&pool, &users, created).await;
    let mut users_of = HashMap::new();
    let mut n = 0;
    let mut batch = Vec::new();
    for u in &users {
        for tenor in Tenor::ALL {
            for otr in [30_000_000i64, 25_000_000] {
                n += 1;
                let c = tx(n, u, tenor, otr);
                users_of.insert(c.api_call_id.clone(), u.clone());
                batch.push(c);
            }
        }
    }
    apply(&pool, &batch).await;
    let ks = contracts(&pool).await;
    assert!(ks.len() >= 12, "{}", ks.len());
    let payments: Vec<Command> = ks
        .iter()
        .enumerate()
        .map(|(i, (nk, c))| pay(i, nk, c / 2))
        .collect();
    apply(&pool, &payments).await;
    let mut patches = vec![
        change(
            &pool,
            1,
            &users[0],
            vec![
                (Tenor::One, Money::from_cents(120_000_000)),
                (Tenor::Six, Money::from_cents(90_000_000)),
            ],
        )
        .await,
        change(
            &pool,
            2,
            &users[1],
            vec![(Tenor::Two, Money::from_cents(1_000))],
        )
        .await,
        // Equal to the current value: 200, nothing recorded.
        change(
            &pool,
            3,
            &users[0],
            vec![(Tenor::One, Money::from_cents(120_000_000))],
        )
        .await,
    ];
    let today = shared::cob::jakarta_date(Utc::now());
    let outcome = close_through(
        &pool,
        today + chrono::Duration::days(75),
        CobOptions {
            chunk: 5,
            fee_percent: Decimal::ONE,
            duty_percent: 100,
            lock_wait: std::time::Duration::ZERO,
        },
    )
    .await
    .expect("cob");
    assert!(
        matches!(outcome, shared::db::cob::CobOutcome::Closed { fees_charged, .. } if fees_charged > 0),
        "{outcome:?}"
    );
    // After the close: a transaction of an overdue user, payments that pay fees first.
    n += 1;
    let late = tx(n, &users[2], Tenor::Three, 1_000_000);
    users_of.insert(late.api_call_id.clone(), users[2].clone());
    let after: Vec<Command> = ks
        .iter()
        .enumerate()
        .map(|(i, (nk, c))| pay(100 + i, nk, *c))
        .chain(std::iter::once(late))
        .collect();
    apply(&pool, &after).await;
    patches.push(
        change(
            &pool,
            4,
            &users[2],
            vec![(Tenor::Three, Money::from_cents(150_000_000))],
        )
        .await,
    );

    let db: String = sqlx::query_scalar("SELECT DATABASE()")
        .fetch_one(&pool)
        .await
        .expect("db");
    // `verify` connects itself: to this test's database on DATABASE_URL's server.
    let server = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let server = server
        .split('?')
        .next()
        .and_then(|u| u.rsplit_once('/'))
        .map_or(server.as_str(), |(s, _)| s);
    let url = format!("{server}/{db}");
    let (records, finals) = calls(&pool, &users_of).await;
    let reasons: Vec<_> = finals.values().filter_map(|f| f.reason.clone()).collect();
    assert!(reasons.iter().any(|r| r == "USER_OVERDUE"), "{reasons:?}");
    assert!(
        matches!(patches[1].outcome, PatchOutcome::BelowUsed { .. }),
        "{patches:?}"
    );
    let fees: Decimal = sqlx::query_scalar("SELECT SUM(denda_terbayar) FROM monthly_billings")
        .fetch_one(&pool)
        .await
        .expect("fees");
    assert!(fees > Decimal::ZERO);
    let facts = RunFacts {
        users: &users,
        records: &records,
        finals: &finals,
        contract_events: None,
        limit_patches: &patches,
        granted_at_creation: created,
    };
    let v = verify(&url.parse().expect("one URL"), &facts)
        .await
        .expect("verify");
    assert!(v.is_empty(), "{v:#?}");

    // Each break is found.
    sqlx::query("UPDATE monthly_billings SET denda_terbayar = denda_terbayar - 0.01 WHERE denda_terbayar > 0 ORDER BY billing_id LIMIT 1")
        .execute(&pool).await.expect("corrupt fee");
    sqlx::query("UPDATE limit_changes SET old_granted = old_granted + 1 ORDER BY id LIMIT 1")
        .execute(&pool)
        .await
        .expect("corrupt chain");
    sqlx::query("UPDATE limit_changes SET api_call_id = 'API_CALL_LC2' ORDER BY id DESC LIMIT 1")
        .execute(&pool)
        .await
        .expect("corrupt call");
    sqlx::query("UPDATE user_limit_balances SET available_two_month = available_two_month - 1, limit_sixth = limit_sixth + 1 WHERE user_id = 'USR_lgtest_0'")
        .execute(&pool).await.expect("corrupt limit");
    // A transaction rejected USER_OVERDUE of a user with no overdue installment.
    let mut fake = records.clone();
    let mut finals2 = finals.clone();
    let mut r = CallRecord::new(Kind::Transaction, "T-fake".into());
    r.api_call_id = Some("API_CALL_fake".into());
    r.user_id = Some("USR_nobody".into());
    fake.push(r);
    finals2.insert(
        "API_CALL_fake".into(),
        FinalSeen {
            state: "REJECTED".into(),
            reason: Some("USER_OVERDUE".into()),
            completed_at: None,
            seen_at: Utc::now(),
            resource_id: None,
        },
    );
    let facts = RunFacts {
        records: &fake,
        finals: &finals2,
        ..facts
    };
    let v = verify(&url.parse().expect("one URL"), &facts)
        .await
        .expect("verify");
    for expected in [
        "payments' alokasi give it",
        "starts from",
        "LIMIT_BELOW_USED, yet",
        "installments' unpaid parts",
        "end at",
        "no installment with overdue_since",
    ] {
        assert!(v.iter().any(|m| m.contains(expected)), "{expected}: {v:#?}");
    }
}
