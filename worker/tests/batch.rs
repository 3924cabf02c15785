//! The unit of work against the real MariaDB (a database per test): a batch decided with a few
//! multi-row statements must decide exactly what command-by-command application decides.

use chrono::{NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use shared::config::{DEV_BLIND_INDEX_KEY, DEV_MASTER_KEYS};
use shared::contract::{ContractTerms, Tenor, schedule};
use shared::crypto::Keyring;
use shared::db::users::{IdempotencyRecord, NewUser, UserStatus, create_user, set_status};
use shared::envelope::RejectReason;
use shared::messages::{
    COMMAND_SCHEMA_VERSION, Command, CommandPayload, PaymentPayload, RefundPayload, Subject,
    TransactionPayload,
};
use shared::money::{Money, Rate};
use shared::status::CallState;
use sqlx::{MySqlPool, Row};
use worker::unit::{BatchPath, Decision, apply_batch_on_path, lock_order};

fn money(s: &str) -> Money {
    s.parse().expect("test money")
}

fn terms(tenor: Tenor) -> ContractTerms {
    ContractTerms {
        otr: money("1000000"),
        admin_fee: money("50000"),
        harga_aset: money("900000"),
        bunga_persen: Rate::parse_json("2.5").expect("test rate"),
        tenor,
    }
}

/// What a contract on these terms takes from the limit.
fn cost(tenor: Tenor) -> Money {
    schedule(&terms(tenor), Utc::now())
        .expect("test terms compute")
        .jumlah_cicilan
}

async fn user(pool: &MySqlPool, limits: [Money; 4]) -> String {
    let keyring = Keyring::from_config(DEV_MASTER_KEYS, "dev", DEV_BLIND_INDEX_KEY).expect("keys");
    let user_id = shared::ids::new_user_id();
    let nik = format!("3201{:012}", rand_digits());
    let call = shared::ids::new_api_call_id();
    let idem = IdempotencyRecord {
        merchant_id: "platform",
        endpoint: "create-user",
        external_id: &call,
        api_call_id: &call,
        body_sha256: [0; 32],
    };
    let new = NewUser {
        nik,
        full_name: "Budi Santoso".into(),
        legal_name: "Budi Santoso".into(),
        tempat_lahir: "Bandung".into(),
        tanggal_lahir: NaiveDate::from_ymd_opt(1990, 1, 15).expect("date"),
        gaji: money("12000000"),
        foto_ktp: "https://cdn.example.com/ktp.jpg".into(),
        foto_selfie: "https://cdn.example.com/selfie.jpg".into(),
        limits,
    };
    create_user(pool, &keyring, &user_id, &new, &idem, Utc::now())
        .await
        .expect("user created");
    user_id
}

fn rand_digits() -> u64 {
    u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    ) % 1_000_000_000_000
}

fn command(external_id: &str, payload: CommandPayload) -> Command {
    Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: shared::ids::new_api_call_id(),
        merchant_id: "merchant-a".into(),
        client_id: "ck_test".into(),
        body_sha256: shared::signature::sha256_hex(external_id.as_bytes()),
        external_id: external_id.into(),
        accepted_at: Utc::now(),
        reply_to: None,
        payload,
    }
}

fn checkout(user_id: &str, tenor: Tenor) -> Command {
    command(
        &format!("ORDER-{}", uuid::Uuid::new_v4().simple()),
        CommandPayload::Transaction(TransactionPayload {
            user_id: user_id.into(),
            terms: terms(tenor),
            nama_aset: "Kulkas 2 Pintu".into(),
        }),
    )
}

fn payment(nomor_kontrak: &str, jumlah: Money) -> Command {
    command(
        &format!("PAY-{}", uuid::Uuid::new_v4().simple()),
        CommandPayload::Payment(PaymentPayload {
            nomor_kontrak: nomor_kontrak.into(),
            jumlah,
        }),
    )
}

fn refund(nomor_kontrak: &str, jumlah: Money, merchant_id: &str) -> Command {
    let mut c = command(
        &format!("RFD-{}", uuid::Uuid::new_v4().simple()),
        CommandPayload::Refund(RefundPayload {
            nomor_kontrak: nomor_kontrak.into(),
            jumlah,
            alasan: "barang dikembalikan".into(),
        }),
    );
    c.merchant_id = merchant_id.into();
    c
}

/// A command's final state, reason and result.
type Answer = (CallState, Option<RejectReason>, Option<Value>);

/// The state and reason of each answer.
fn verdicts(answers: &[Answer]) -> Vec<(CallState, Option<RejectReason>)> {
    answers.iter().map(|(s, r, _)| (*s, *r)).collect()
}

/// Applies a batch in the order the consumer sorts it, answering in the order given.
async fn apply(pool: &MySqlPool, batch: &[Command]) -> (Vec<Answer>, BatchPath) {
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_by_key(|&i| lock_order(&batch[i]));
    let refs: Vec<&Command> = order.iter().map(|&i| &batch[i]).collect();
    let (decisions, path) = apply_batch_on_path(pool, &refs, None)
        .await
        .expect("batch applied");
    let mut answers = vec![None; batch.len()];
    for (&i, decision) in order.iter().zip(decisions) {
        let Decision::Final(record) = decision else {
            panic!("command {i} was not decided: {decision:?}");
        };
        answers[i] = Some((
            record.status.status,
            record.status.reason,
            record.status.result.as_ref().map(|r| r.to_value()),
        ));
    }
    (
        answers
            .into_iter()
            .map(|a| a.expect("every command answered"))
            .collect(),
        path,
    )
}

async fn available(pool: &MySqlPool, user_id: &str, tenor: Tenor) -> Money {
    let column = tenor.limit_columns().1;
    let d: Decimal = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT {column} FROM user_limit_balances WHERE user_id = ?"
    )))
    .bind(user_id)
    .fetch_one(pool)
    .await
    .expect("limits row");
    Money::new(d).expect("money")
}

async fn count(pool: &MySqlPool, sql: &str, user_id: &str) -> i64 {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(user_id)
        .fetch_one(pool)
        .await
        .expect("count")
        .get(0)
}

fn limit_left(result: &Option<Value>, tenor: Tenor) -> Money {
    let v = result
        .as_ref()
        .and_then(|r| r["limit_tersisa"][tenor.key()]["available"].as_str())
        .expect("limit_tersisa in the outcome");
    money(v)
}

fn times(m: Money, k: i64) -> Money {
    Money::new(m.value() * Decimal::from(k)).expect("money")
}

#[sqlx::test(migrations = "../migrations")]
async fn a_batch_is_decided_in_order_on_locked_limits_with_a_few_statements(pool: MySqlPool) {
    let one = cost(Tenor::One);
    let six = cost(Tenor::Six);
    // Room for two one-month contracts and a half, and for one six-month contract.
    let limit_one = Money::new(one.value() * Decimal::new(25, 1)).expect("money");
    let alice = user(&pool, [limit_one, money("0"), money("0"), six]).await;
    let bob = user(&pool, [limit_one, limit_one, limit_one, six]).await;
    set_status(&pool, &bob, UserStatus::Lock)
        .await
        .expect("locked");

    let batch = vec![
        checkout(&alice, Tenor::One),
        checkout(&alice, Tenor::One),
        checkout(&alice, Tenor::One),
        checkout(&bob, Tenor::One),
        checkout("USR_00000000000000000000000000000000", Tenor::One),
        checkout("not an id", Tenor::One),
        checkout(&alice, Tenor::Six),
        checkout(&alice, Tenor::Two),
    ];
    let (answers, path) = apply(&pool, &batch).await;
    assert_eq!(path, BatchPath::SetBased);
    assert_eq!(
        verdicts(&answers),
        vec![
            (CallState::Approved, None),
            (CallState::Approved, None),
            (CallState::Rejected, Some(RejectReason::InsufficientLimit)),
            (CallState::Rejected, Some(RejectReason::UserNotActive)),
            (CallState::Rejected, Some(RejectReason::UserNotFound)),
            (CallState::Rejected, Some(RejectReason::UserNotFound)),
            (CallState::Approved, None),
            (CallState::Rejected, Some(RejectReason::InsufficientLimit)),
        ]
    );
    // Each approved contract reports the limits right after itself.
    assert_eq!(
        limit_left(&answers[0].2, Tenor::One),
        limit_one.checked_sub(one).expect("room")
    );
    assert_eq!(
        limit_left(&answers[1].2, Tenor::One),
        limit_one.checked_sub(times(one, 2)).expect("room")
    );
    assert_eq!(limit_left(&answers[6].2, Tenor::Six), Money::ZERO);

    assert_eq!(
        available(&pool, &alice, Tenor::One).await,
        limit_one.checked_sub(times(one, 2)).expect("room")
    );
    assert_eq!(available(&pool, &alice, Tenor::Six).await, Money::ZERO);
    assert_eq!(available(&pool, &bob, Tenor::One).await, limit_one);
    let contracts = count(
        &pool,
        "SELECT COUNT(*) FROM transactions WHERE user_id = ?",
        &alice,
    )
    .await;
    assert_eq!(contracts, 3);
    let installments = count(
        &pool,
        "SELECT COUNT(*) FROM monthly_billings WHERE user_id = ?",
        &alice,
    )
    .await;
    assert_eq!(installments, 1 + 1 + 6);
    let outcomes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM async_outcomes")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(outcomes, batch.len() as i64);
    let claims: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM idempotency_keys WHERE endpoint = 'transaction'")
            .fetch_one(&pool)
            .await
            .expect("count");
    assert_eq!(claims, batch.len() as i64);
}

#[sqlx::test(migrations = "../migrations")]
async fn a_used_external_id_sends_the_batch_one_by_one_with_the_same_decisions(pool: MySqlPool) {
    let three = cost(Tenor::Three);
    let limit = times(three, 3);
    let limits = [limit, limit, limit, limit];
    let mut xs = Vec::new();
    let mut ys = Vec::new();
    for _ in 0..3 {
        xs.push(user(&pool, limits).await);
        ys.push(user(&pool, limits).await);
    }
    // The same shape twice: four checkouts per user (the fourth does not fit).
    let shape = |users: &[String]| -> Vec<Command> {
        users
            .iter()
            .flat_map(|u| (0..4).map(move |_| checkout(u, Tenor::Three)))
            .collect()
    };
    let x_batch = shape(&xs);
    let (x_answers, x_path) = apply(&pool, &x_batch).await;
    assert_eq!(x_path, BatchPath::SetBased);

    let mut y_batch = shape(&ys);
    // One command reuses an external id of the first batch.
    let reused = command(
        &x_batch[0].external_id,
        CommandPayload::Transaction(TransactionPayload {
            user_id: ys[0].clone(),
            terms: terms(Tenor::One),
            nama_aset: "Kulkas 2 Pintu".into(),
        }),
    );
    y_batch.push(reused);
    let (y_answers, y_path) = apply(&pool, &y_batch).await;
    assert_eq!(y_path, BatchPath::OneByOne);

    assert_eq!(verdicts(&y_answers[..x_batch.len()]), verdicts(&x_answers));
    let (state, reason, result) = &y_answers[x_batch.len()];
    assert_eq!(
        (*state, *reason),
        (CallState::Rejected, Some(RejectReason::DuplicateExternalId))
    );
    assert_eq!(
        result
            .as_ref()
            .and_then(|r| r["original_api_call_id"].as_str()),
        Some(x_batch[0].api_call_id.as_str())
    );
    for (i, (x, y)) in x_answers.iter().zip(&y_answers).enumerate() {
        if x.0 == CallState::Approved {
            assert_eq!(
                limit_left(&x.2, Tenor::Three),
                limit_left(&y.2, Tenor::Three),
                "command {i}"
            );
        }
    }
    for (x, y) in xs.iter().zip(&ys) {
        assert_eq!(available(&pool, x, Tenor::Three).await, Money::ZERO);
        assert_eq!(available(&pool, y, Tenor::Three).await, Money::ZERO);
        assert_eq!(
            available(&pool, y, Tenor::One).await,
            limit,
            "the duplicate took nothing"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn payments_in_a_batch_come_after_its_checkouts_and_restore_the_limit(pool: MySqlPool) {
    let three = cost(Tenor::Three);
    let limit = times(three, 2);
    let alice = user(&pool, [limit, limit, limit, limit]).await;
    let first = checkout(&alice, Tenor::Three);
    let (answers, _) = apply(&pool, std::slice::from_ref(&first)).await;
    let nomor = answers[0]
        .2
        .as_ref()
        .and_then(|r| r["nomor_kontrak"].as_str())
        .expect("contract number")
        .to_owned();

    // Paid in full in the same batch as two more checkouts: the checkouts are decided first,
    // so only one of them fits; then the payment gives the first contract's amount back.
    let batch = vec![
        payment(&nomor, three),
        checkout(&alice, Tenor::Three),
        checkout(&alice, Tenor::Three),
        payment(&nomor, money("0.01")),
        payment("KTR_00000000000000000000000000000000", money("10")),
    ];
    let (answers, path) = apply(&pool, &batch).await;
    assert_eq!(path, BatchPath::SetBased);
    assert_eq!(
        verdicts(&answers),
        vec![
            (CallState::Approved, None),
            (CallState::Approved, None),
            (CallState::Rejected, Some(RejectReason::InsufficientLimit)),
            (CallState::Rejected, Some(RejectReason::Overpayment)),
            (CallState::Rejected, Some(RejectReason::ContractNotFound)),
        ]
    );
    let bill = answers[0].2.as_ref().expect("bill");
    assert_eq!(bill["status_bayar"], "SUCCESS");
    assert_eq!(
        money(bill["sisa_limit"].as_str().expect("sisa_limit")),
        three
    );
    assert_eq!(available(&pool, &alice, Tenor::Three).await, three);
}

#[sqlx::test(migrations = "../migrations")]
async fn payments_and_refunds_on_one_contract_are_decided_in_order_on_either_path(pool: MySqlPool) {
    let three = cost(Tenor::Three);
    let paid = money("400000");
    let first_refund = money("500000");
    let rest = three.checked_sub(first_refund).expect("room");
    let mut runs = Vec::new();
    let mut first_external_id = String::new();
    for path in [BatchPath::SetBased, BatchPath::OneByOne] {
        let alice = user(&pool, [three, three, three, three]).await;
        let (answers, _) = apply(&pool, &[checkout(&alice, Tenor::Three)]).await;
        let nomor = answers[0]
            .2
            .as_ref()
            .and_then(|r| r["nomor_kontrak"].as_str())
            .expect("contract number")
            .to_owned();
        let mut batch = vec![
            payment(&nomor, paid),
            refund(&nomor, first_refund, "merchant-a"),
            refund(&nomor, money("1"), "merchant-b"),
            refund(
                &nomor,
                rest.checked_add(money("0.01")).expect("sum"),
                "PLATFORM",
            ),
            payment(&nomor, three),
            refund(&nomor, rest, "merchant-a"),
            refund(
                "KTR_00000000000000000000000000000000",
                money("1"),
                "PLATFORM",
            ),
        ];
        if path == BatchPath::SetBased {
            first_external_id = batch[0].external_id.clone();
        } else {
            batch.push(payment(&nomor, money("1")));
            batch.last_mut().expect("pushed").external_id = first_external_id.clone();
        }
        let (answers, applied_on) = apply(&pool, &batch).await;
        assert_eq!(applied_on, path);
        assert_eq!(
            verdicts(&answers[..7]),
            vec![
                (CallState::Approved, None),
                (CallState::Approved, None),
                (CallState::Rejected, Some(RejectReason::ContractNotFound)),
                (CallState::Rejected, Some(RejectReason::RefundExceeds)),
                (CallState::Rejected, Some(RejectReason::Overpayment)),
                (CallState::Approved, None),
                (CallState::Rejected, Some(RejectReason::ContractNotFound)),
            ]
        );
        let field = |i: usize, k: &str| answers[i].2.as_ref().expect("result")[k].clone();
        // 500000 cancels the last installment and part of the second; the rest of the
        // refundable amount cancels what is unpaid and owes back what was paid.
        assert_eq!(field(1, "mengurangi_tagihan"), "500000.00");
        assert_eq!(field(1, "status_kontrak"), "ACTIVE");
        assert_eq!(
            field(5, "mengurangi_tagihan").as_str().map(money),
            rest.checked_sub(paid)
        );
        assert_eq!(field(5, "dikembalikan_ke_konsumen"), "400000.00");
        assert_eq!(field(5, "sisa_tagihan"), "0.00");
        assert_eq!(field(5, "status_kontrak"), "CANCELLED");
        assert_eq!(limit_left(&answers[5].2, Tenor::Three), three);
        assert_eq!(available(&pool, &alice, Tenor::Three).await, three);
        let (terbayar, total_refund): (Decimal, Decimal) = sqlx::query_as(
            "SELECT terbayar, total_refund FROM transactions WHERE nomor_kontrak = ?",
        )
        .bind(&nomor)
        .fetch_one(&pool)
        .await
        .expect("contract");
        assert_eq!((terbayar, total_refund), (paid.value(), three.value()));
        let cancelled: Decimal = sqlx::query_scalar(
            "SELECT SUM(dibatalkan) FROM monthly_billings WHERE nomor_kontrak = ?",
        )
        .bind(&nomor)
        .fetch_one(&pool)
        .await
        .expect("installments");
        assert_eq!(cancelled, three.value() - paid.value());
        let keep = [
            "mengurangi_tagihan",
            "dikembalikan_ke_konsumen",
            "sisa_tagihan",
            "status_kontrak",
        ];
        runs.push(
            answers
                .iter()
                .take(7)
                .map(|(s, r, result)| {
                    let kept: Vec<Value> = keep
                        .iter()
                        .map(|k| result.as_ref().map_or(Value::Null, |v| v[*k].clone()))
                        .collect();
                    (*s, *r, kept)
                })
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(runs[0], runs[1], "both paths decide alike");
}

#[sqlx::test(migrations = "../migrations")]
async fn a_redelivered_batch_reports_its_first_decisions_and_changes_nothing(pool: MySqlPool) {
    let two = cost(Tenor::Two);
    let alice = user(&pool, [two, two, two, two]).await;
    let batch = vec![checkout(&alice, Tenor::Two), checkout(&alice, Tenor::Two)];
    let (first, path) = apply(&pool, &batch).await;
    assert_eq!(path, BatchPath::SetBased);
    let (again, path) = apply(&pool, &batch).await;
    assert_eq!(path, BatchPath::OneByOne);
    assert_eq!(first, again);
    assert_eq!(available(&pool, &alice, Tenor::Two).await, Money::ZERO);
    let contracts = count(
        &pool,
        "SELECT COUNT(*) FROM transactions WHERE user_id = ?",
        &alice,
    )
    .await;
    assert_eq!(contracts, 1);
}

#[sqlx::test(migrations = "../migrations")]
async fn lanes_share_no_user_and_side_by_side_take_each_limit_exactly(pool: MySqlPool) {
    // Twelve users with room for two one-month contracts each, one taken by a first contract
    // that the batch then pays in full.
    let one = cost(Tenor::One);
    let limit = times(one, 2);
    let mut owners: std::collections::BTreeMap<String, String> = Default::default();
    let mut batch = Vec::new();
    for _ in 0..12 {
        let u = user(&pool, [limit, limit, limit, limit]).await;
        let (answers, _) = apply(&pool, &[checkout(&u, Tenor::One)]).await;
        let nomor = answers[0]
            .2
            .as_ref()
            .and_then(|r| r["nomor_kontrak"].as_str())
            .expect("contract number")
            .to_owned();
        owners.insert(nomor.clone(), u.clone());
        // Three checkouts (one fits), then the payment gives the first contract back.
        for _ in 0..3 {
            batch.push(checkout(&u, Tenor::One));
        }
        batch.push(payment(&nomor, one));
    }
    let total = batch.len();

    let lanes = worker::lanes::split(&pool, batch, |c| c, 3).await;
    assert_eq!(lanes.iter().map(Vec::len).sum::<usize>(), total);
    let mut lane_of_user: std::collections::BTreeMap<String, usize> = Default::default();
    for (n, lane) in lanes.iter().enumerate() {
        for c in lane {
            let u = match c.payload.subject() {
                Subject::User(user) => user.to_owned(),
                Subject::Contract(nomor) => owners[nomor].clone(),
            };
            let first = *lane_of_user.entry(u.clone()).or_insert(n);
            assert_eq!(first, n, "user {u} is in lanes {first} and {n}");
        }
    }

    // Side by side, as a consumer applies them.
    let applied = futures_util::future::join_all(lanes.iter().map(|lane| {
        let pool = pool.clone();
        async move {
            let mut refs: Vec<&Command> = lane.iter().collect();
            refs.sort_by_key(|c| lock_order(c));
            worker::unit::apply_batch(&pool, &refs).await
        }
    }))
    .await;
    let mut verdicts: Vec<(CallState, Option<RejectReason>)> = Vec::new();
    for decisions in applied {
        for d in decisions.expect("lane committed") {
            let Decision::Final(record) = d else {
                panic!("undecided: {d:?}");
            };
            verdicts.push((record.status.status, record.status.reason));
        }
    }
    let tally = |v: (CallState, Option<RejectReason>)| verdicts.iter().filter(|x| **x == v).count();
    assert_eq!(tally((CallState::Approved, None)), 12 + 12);
    assert_eq!(
        tally((CallState::Rejected, Some(RejectReason::InsufficientLimit))),
        24
    );
    for u in owners.values() {
        assert_eq!(available(&pool, u, Tenor::One).await, one, "user {u}");
        assert_eq!(
            count(
                &pool,
                "SELECT COUNT(*) FROM transactions WHERE user_id = ?",
                u
            )
            .await,
            2
        );
    }
}

/// The contracts a batch's payments and refunds change are written back together: each one
/// ends with exactly its own payments and refunds, dated by its own last command, and a
/// contract of the same owner that the batch does not name is left as it was.
#[sqlx::test(migrations = "../migrations")]
async fn several_contracts_changed_in_one_batch_each_keep_exactly_their_own_changes(
    pool: MySqlPool,
) {
    let three = cost(Tenor::Three);
    let limit = times(three, 4);
    let alice = user(&pool, [limit, limit, limit, limit]).await;
    let checkouts: Vec<Command> = (0..4).map(|_| checkout(&alice, Tenor::Three)).collect();
    let (answers, _) = apply(&pool, &checkouts).await;
    let mut nomors: Vec<String> = answers
        .iter()
        .map(|a| {
            a.2.as_ref()
                .and_then(|r| r["nomor_kontrak"].as_str())
                .expect("contract number")
                .to_owned()
        })
        .collect();
    nomors.sort();
    let untouched_before = contract_totals(&pool, &nomors[3]).await;

    // Three contracts changed (a chunk of two and one of one), the fourth not named.
    let batch = vec![
        payment(&nomors[0], money("100000")),
        refund(&nomors[1], money("250000.50"), "merchant-a"),
        payment(&nomors[2], money("30000")),
        refund(&nomors[2], money("20000"), "merchant-a"),
        payment(&nomors[0], money("0.25")),
    ];
    let (answers, path) = apply(&pool, &batch).await;
    assert_eq!(path, BatchPath::SetBased);
    assert!(
        answers.iter().all(|a| a.0 == CallState::Approved),
        "{:?}",
        verdicts(&answers)
    );
    let expected = [
        (&nomors[0], "100000.25", "0", batch[4].accepted_at),
        (&nomors[1], "0", "250000.50", batch[1].accepted_at),
        (&nomors[2], "30000", "20000", batch[3].accepted_at),
    ];
    for (nomor, paid, refunded, last) in expected {
        let (terbayar, total_refund, updated) = contract_totals(&pool, nomor).await;
        assert_eq!(terbayar, money(paid).value(), "{nomor} terbayar");
        assert_eq!(
            total_refund,
            money(refunded).value(),
            "{nomor} total_refund"
        );
        // Stored to the microsecond.
        let last = chrono::SubsecRound::trunc_subsecs(last.naive_utc(), 6);
        assert_eq!(updated, last, "{nomor} tanggal_update");
    }
    assert_eq!(contract_totals(&pool, &nomors[3]).await, untouched_before);
}

/// A contract's `terbayar`, `total_refund` and `tanggal_update` as stored.
async fn contract_totals(
    pool: &MySqlPool,
    nomor: &str,
) -> (Decimal, Decimal, chrono::NaiveDateTime) {
    sqlx::query_as(
        "SELECT terbayar, total_refund, tanggal_update FROM transactions WHERE nomor_kontrak = ?",
    )
    .bind(nomor)
    .fetch_one(pool)
    .await
    .expect("contract row")
}
