//! POST /refund (SPEC §9): the allocation from the last installment backwards, cancellation,
//! the limits it restores, its rejections and external ids, and the §9 equation under races.

use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const LIMITS: [&str; 4] = ["100000", "300000", "500000", "10000000"];

/// The §4 contract (1182.50 over 3 months: 394.17, 394.17, 394.16), by the merchant.
async fn spec_contract(app: &TestApp, user: &str) -> Value {
    contract(app, user, "1000.00", "100.00", "2.5", 3).await
}

fn refund_body(nomor: &str, jumlah: &str) -> Value {
    serde_json::from_str(&format!(
        r#"{{"nomor_kontrak":"{nomor}","jumlah":{jumlah},"alasan":"barang dikembalikan"}}"#
    ))
    .expect("json")
}

async fn refund(app: &TestApp, key: &Key, nomor: &str, jumlah: &str) -> Resp {
    app.post_wait(key, "/refund", &fresh_id(), &refund_body(nomor, jumlah))
        .await
}

fn alokasi(result: &Value, contract: &Value) -> Vec<(u64, String)> {
    let cicilan_ke = |billing_id: &Value| {
        contract["tagihan"]
            .as_array()
            .expect("tagihan")
            .iter()
            .find(|t| t["billing_id"] == *billing_id)
            .and_then(|t| t["cicilan_ke"].as_u64())
            .expect("an installment of the contract")
    };
    result["alokasi"]
        .as_array()
        .expect("alokasi")
        .iter()
        .map(|a| {
            (
                cicilan_ke(&a["billing_id"]),
                a["jumlah"].as_str().expect("jumlah").to_owned(),
            )
        })
        .collect()
}

/// (harga_cicilan, terbayar, dibatalkan, status) of each installment, by `cicilan_ke`.
fn installments(contract: &Value) -> Vec<(String, String, String, String)> {
    contract["tagihan"]
        .as_array()
        .expect("tagihan")
        .iter()
        .map(|t| {
            assert_eq!(t["denda"], "0.00");
            assert_eq!(t["denda_terbayar"], "0.00");
            assert_eq!(t["hari_terlambat"], 0);
            let s = |k: &str| t[k].as_str().expect(k).to_owned();
            (
                s("harga_cicilan"),
                s("terbayar"),
                s("dibatalkan"),
                s("status"),
            )
        })
        .collect()
}

fn row(h: &str, p: &str, c: &str, s: &str) -> (String, String, String, String) {
    (h.into(), p.into(), c.into(), s.into())
}

#[sqlx::test(migrations = "../migrations")]
async fn spec_example_refund_then_cancel_restores_the_limit_to_granted(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(LIMITS).await;
    let c = spec_contract(&app, &user).await;
    assert_eq!(c["status_kontrak"], "ACTIVE");
    assert_eq!(c["total_refund"], "0.00");
    assert_eq!(
        installments(&c),
        [
            row("394.17", "0.00", "0.00", "UNPAID"),
            row("394.17", "0.00", "0.00", "UNPAID"),
            row("394.16", "0.00", "0.00", "UNPAID")
        ]
    );
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let paid = pay(&app, &nomor, "394.17").await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    assert_eq!(app.limits(&user).await["3"]["available"], "499211.67");

    let first = refund(&app, &app.merchant, &nomor, "500.00").await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.action(), "SUCCESS");
    assert_eq!(first.data()["type"], "REFUND");
    assert_eq!(first.data()["status"], "APPROVED");
    let r = &first.data()["result"];
    let keys: Vec<&str> = r
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected_keys = vec![
        "kode_refund",
        "nomor_kontrak",
        "user_id",
        "jumlah",
        "mengurangi_tagihan",
        "dikembalikan_ke_konsumen",
        "alokasi",
        "sisa_tagihan",
        "status_kontrak",
        "limit_tersisa",
        "alasan",
        "tanggal_refund",
    ];
    let mut keys = keys;
    keys.sort_unstable();
    expected_keys.sort_unstable();
    assert_eq!(keys, expected_keys, "exactly the fields of §9");
    assert!(r["kode_refund"].as_str().expect("kode").starts_with("RFD_"));
    assert_eq!(r["nomor_kontrak"], nomor.as_str());
    assert_eq!(r["user_id"], user.as_str());
    assert_eq!(r["jumlah"], "500.00");
    assert_eq!(
        alokasi(r, &c),
        [(3, "394.16".to_owned()), (2, "105.84".to_owned())]
    );
    assert_eq!(r["mengurangi_tagihan"], "500.00");
    assert_eq!(r["dikembalikan_ke_konsumen"], "0.00");
    assert_eq!(r["sisa_tagihan"], "288.33");
    assert_eq!(r["status_kontrak"], "ACTIVE");
    assert_eq!(r["alasan"], "barang dikembalikan");
    assert_eq!(r["limit_tersisa"]["3"]["available"], "499711.67");
    assert_eq!(r["tanggal_refund"], first.data()["created_at"]);

    let now = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(now.status, 200, "{}", now.body);
    assert_eq!(now.data()["status_kontrak"], "ACTIVE");
    assert_eq!(now.data()["total_refund"], "500.00");
    assert_eq!(
        installments(now.data()),
        [
            row("394.17", "394.17", "0.00", "PAID"),
            row("394.17", "0.00", "105.84", "UNPAID"),
            row("394.16", "0.00", "394.16", "CANCELLED")
        ]
    );

    let rest = refund(&app, &app.merchant, &nomor, "682.50").await;
    assert_eq!(rest.status, 201, "{}", rest.body);
    let r = &rest.data()["result"];
    assert_eq!(alokasi(r, &c), [(2, "288.33".to_owned())]);
    assert_eq!(r["mengurangi_tagihan"], "288.33");
    assert_eq!(r["dikembalikan_ke_konsumen"], "394.17");
    assert_eq!(r["sisa_tagihan"], "0.00");
    assert_eq!(r["status_kontrak"], "CANCELLED");
    assert_eq!(r["limit_tersisa"]["3"]["available"], "500000.00");
    assert_eq!(app.limits(&user).await["3"]["available"], "500000.00");

    let cancelled = app.get(&app.admin, &format!("/contracts/{nomor}")).await;
    assert_eq!(cancelled.data()["status_kontrak"], "CANCELLED");
    assert_eq!(cancelled.data()["total_refund"], "1182.50");
    assert_eq!(
        installments(cancelled.data()),
        [
            row("394.17", "394.17", "0.00", "PAID"),
            row("394.17", "0.00", "394.17", "CANCELLED"),
            row("394.16", "0.00", "394.16", "CANCELLED")
        ]
    );
    // The user's billings show the same installments.
    let billings = app
        .get(&app.admin, &format!("/users/{user}/billings"))
        .await;
    assert_eq!(billings.status, 200, "{}", billings.body);
    let mut listed: Vec<(String, String, String, String)> = billings.data()["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| {
            assert_eq!(t["nomor_kontrak"], nomor.as_str());
            let s = |k: &str| t[k].as_str().expect(k).to_owned();
            (
                s("harga_cicilan"),
                s("terbayar"),
                s("dibatalkan"),
                s("status"),
            )
        })
        .collect();
    listed.sort();
    let mut shown = installments(cancelled.data());
    shown.sort();
    assert_eq!(listed, shown);

    // A cancelled contract has nothing outstanding and nothing left to refund.
    let over = pay(&app, &nomor, "0.01").await;
    assert_eq!(over.status, 400, "{}", over.body);
    assert_eq!(over.action(), "OVERPAYMENT");
    let exceeds = refund(&app, &app.merchant, &nomor, "0.01").await;
    assert_eq!(exceeds.status, 400, "{}", exceeds.body);
    assert_eq!(exceeds.action(), "REFUND_EXCEEDS");
    assert_eq!(exceeds.data()["reason"], "REFUND_EXCEEDS");
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_payment_after_a_partial_refund_pays_only_what_is_not_cancelled(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app.create_user(LIMITS).await;
    let c = spec_contract(&app, &user).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let first = refund(&app, &app.merchant, &nomor, "500.00").await;
    assert_eq!(first.status, 201, "{}", first.body);

    let over = pay(&app, &nomor, "682.51").await;
    assert_eq!(over.status, 400, "{}", over.body);
    assert_eq!(over.action(), "OVERPAYMENT");
    let paid = pay(&app, &nomor, "682.50").await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    let bill = &paid.data()["result"];
    assert_eq!(bill["total_tagihan"], "682.50");
    assert_eq!(bill["sisa_tagihan_bulanan"], "0.00");
    assert_eq!(bill["status_bayar"], "SUCCESS");
    assert_eq!(
        alokasi(bill, &c),
        [(1, "394.17".to_owned()), (2, "288.33".to_owned())]
    );
    let now = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(now.data()["status_kontrak"], "PAID_OFF");
    assert_eq!(
        installments(now.data()),
        [
            row("394.17", "394.17", "0.00", "PAID"),
            row("394.17", "288.33", "105.84", "PAID"),
            row("394.16", "0.00", "394.16", "CANCELLED")
        ]
    );
    assert_eq!(app.limits(&user).await["3"]["available"], "500000.00");

    // The rest of the refundable amount is all money already paid: owed back, the limit
    // unchanged, the contract cancelled.
    let rest = refund(&app, &app.admin, &nomor, "682.50").await;
    assert_eq!(rest.status, 201, "{}", rest.body);
    let r = &rest.data()["result"];
    assert_eq!(r["alokasi"], json!([]));
    assert_eq!(r["mengurangi_tagihan"], "0.00");
    assert_eq!(r["dikembalikan_ke_konsumen"], "682.50");
    assert_eq!(r["status_kontrak"], "CANCELLED");
    assert_eq!(app.limits(&user).await["3"]["available"], "500000.00");
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn unknown_and_other_merchants_contracts_are_not_found_and_exceeding_keeps_the_claim(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app.create_user(LIMITS).await;
    let c = spec_contract(&app, &user).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();

    for (key, contract) in [
        (&app.merchant, "KTR_nope"),
        (&app.merchant, "not a contract id"),
        (&app.other_merchant, nomor.as_str()),
    ] {
        let r = refund(&app, key, contract, "1").await;
        assert_eq!(r.status, 404, "{contract}: {}", r.body);
        assert_eq!(r.action(), "CONTRACT_NOT_FOUND");
        assert_eq!(r.data()["type"], "REFUND");
        assert_eq!(r.data()["status"], "REJECTED");
        assert_eq!(r.data()["reason"], "CONTRACT_NOT_FOUND");
    }

    let ext = fresh_id();
    let body = refund_body(&nomor, "1182.51");
    let exceeds = app.post_wait(&app.merchant, "/refund", &ext, &body).await;
    assert_eq!(exceeds.status, 400, "{}", exceeds.body);
    assert_eq!(exceeds.action(), "REFUND_EXCEEDS");
    assert_eq!(exceeds.data()["result"], Value::Null);
    let fixed = app
        .post_wait(
            &app.merchant,
            "/refund",
            &ext,
            &refund_body(&nomor, "1182.50"),
        )
        .await;
    assert_eq!(fixed.status, 409, "a rejected refund keeps its external id");
    assert_eq!(fixed.action(), "CONFLICT_EXTERNAL_ID");
    assert_eq!(
        fixed.data()["original_api_call_id"],
        exceeds.body["api_call_id"]
    );
    assert_eq!(fixed.data()["same_payload"], false);

    // Nothing changed; the admin (the platform) may refund any merchant's contract.
    let now = app.get(&app.admin, &format!("/contracts/{nomor}")).await;
    assert_eq!(now.data()["total_refund"], "0.00");
    let by_admin = refund(&app, &app.admin, &nomor, "1182.50").await;
    assert_eq!(by_admin.status, 201, "{}", by_admin.body);
    assert_eq!(by_admin.data()["result"]["status_kontrak"], "CANCELLED");
    assert_eq!(app.limits(&user).await["3"]["available"], "500000.00");
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn refund_external_ids_are_scoped_to_the_merchant_and_the_refund_endpoint(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app.create_user(LIMITS).await;
    let c = spec_contract(&app, &user).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();

    let ext = fresh_id();
    let checkout = app
        .post_transaction(&ext, &transaction_body(&user, "100", "0", "100", "0", 1))
        .await;
    assert_eq!(checkout.status, 202, "{}", checkout.body);
    let body = refund_body(&nomor, "100");
    let accepted = app.post(&app.merchant, "/refund", &ext, &body).await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.action(), "ACCEPTED");
    let call = accepted.body["api_call_id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        accepted.headers["location"].to_str().expect("ascii"),
        format!("/status/{call}")
    );
    assert_eq!(accepted.data()["status_url"], format!("/status/{call}"));
    let status = app.wait_final(&app.merchant, &call).await;
    assert_eq!(status["type"], "REFUND");
    assert_eq!(status["status"], "APPROVED");
    assert_eq!(status["result"]["jumlah"], "100.00");
    assert_eq!(
        app.get(&app.other_merchant, &format!("/status/{call}"))
            .await
            .status,
        404,
        "another merchant's refund is not found"
    );

    let again = app.post(&app.merchant, "/refund", &ext, &body).await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert_eq!(again.action(), "CONFLICT_EXTERNAL_ID");
    assert_eq!(again.data()["original_api_call_id"], call.as_str());
    assert_eq!(again.data()["same_payload"], true);
    // Another merchant's external ids are its own.
    let other = app
        .post_wait(&app.other_merchant, "/refund", &ext, &body)
        .await;
    assert_eq!(other.status, 404, "{}", other.body);
    assert_eq!(other.action(), "CONTRACT_NOT_FOUND");

    let now = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(now.data()["total_refund"], "100.00");
    app.wait_final(
        &app.merchant,
        checkout.body["api_call_id"].as_str().expect("id"),
    )
    .await;
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn malformed_refunds_get_the_exact_code_and_leave_the_external_id_free(
    pool: sqlx::MySqlPool,
) {
    let app = spawn_app(pool).await;
    let user = app.create_user(LIMITS).await;
    let c = spec_contract(&app, &user).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let long = "x".repeat(201);
    let long_nomor = "K".repeat(129);
    let cases: Vec<(String, &str, &str)> = vec![
        ("[1]".into(), "INVALID_PAYLOAD_FORMAT", ""),
        (
            format!(
                r#"{{"nomor_kontrak":"{nomor}","nomor_kontrak":"{nomor}","jumlah":1,"alasan":"x"}}"#
            ),
            "INVALID_PAYLOAD_FORMAT",
            "",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":1,"alasan":"x","extra":1}}"#),
            "INVALID_PAYLOAD_KEY",
            "extra",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":1}}"#),
            "INVALID_MANDATORY",
            "alasan",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":null,"alasan":"x"}}"#),
            "INVALID_MANDATORY",
            "jumlah",
        ),
        (
            r#"{"jumlah":1,"alasan":"x"}"#.into(),
            "INVALID_MANDATORY",
            "nomor_kontrak",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{long_nomor}","jumlah":1,"alasan":"x"}}"#),
            "INVALID_VALUE",
            "nomor_kontrak",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":0,"alasan":"x"}}"#),
            "INVALID_VALUE",
            "jumlah",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":-1,"alasan":"x"}}"#),
            "INVALID_VALUE",
            "jumlah",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":1.001,"alasan":"x"}}"#),
            "INVALID_VALUE",
            "jumlah",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":"abc","alasan":"x"}}"#),
            "INVALID_VALUE",
            "jumlah",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":1,"alasan":""}}"#),
            "INVALID_VALUE",
            "alasan",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":1,"alasan":"{long}"}}"#),
            "INVALID_VALUE",
            "alasan",
        ),
        (
            format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":1,"alasan":7}}"#),
            "INVALID_VALUE",
            "alasan",
        ),
    ];
    let ext = fresh_id();
    for (body, action, field) in &cases {
        let r = app
            .send(
                &app.merchant,
                "POST",
                "/refund",
                Some(&ext),
                Some(body.as_bytes()),
                &[],
            )
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.action(), *action, "{body}: {}", r.body);
        assert!(r.message().contains(field), "{body}: {}", r.body);
    }
    let missing_id = app
        .send(
            &app.merchant,
            "POST",
            "/refund",
            None,
            Some(refund_body(&nomor, "1").to_string().as_bytes()),
            &[],
        )
        .await;
    assert_eq!(missing_id.status, 400);
    assert_eq!(missing_id.action(), "INVALID_MANDATORY");
    assert!(missing_id.message().contains("X-External-Id"));

    // 200 characters, counted as characters, is the longest reason.
    let reason = "é".repeat(200);
    let body = json!({"nomor_kontrak": nomor, "jumlah": "0.01", "alasan": reason});
    let ok = app.post_wait(&app.merchant, "/refund", &ext, &body).await;
    assert_eq!(ok.status, 201, "the external id was left free: {}", ok.body);
    assert_eq!(ok.data()["result"]["alasan"], reason.as_str());
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn racing_refunds_and_payments_keep_the_equation_on_every_contract(pool: sqlx::MySqlPool) {
    let mut app = spawn_app_with(pool, 2).await;
    app.add_worker();
    let users = [
        app.create_user(["5000", "5000", "5000", "5000"]).await,
        app.create_user(["5000", "5000", "5000", "5000"]).await,
    ];
    let mut contracts = Vec::new();
    for (i, tenor) in [1, 2, 3, 6, 3, 6].into_iter().enumerate() {
        let c = contract(&app, &users[i % 2], "600", "0", "1.5", tenor).await;
        contracts.push(c["nomor_kontrak"].as_str().expect("nomor").to_owned());
    }
    // Rounds of payments and refunds on the same contracts at once, with new checkouts on
    // the same users; some exceed what is left.
    let mut calls = Vec::new();
    for round in 0..5 {
        let mut requests = Vec::new();
        for (i, nomor) in contracts.iter().enumerate() {
            let paid = ["60.5", "150", "0.01", "700"][(i + round) % 4];
            requests.push((
                app.admin.clone(),
                "/payment",
                format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":{paid}}}"#),
            ));
            let refunded = ["100", "33.33", "250.5", "0.07"][(i + 2 * round) % 4];
            requests.push((
                app.merchant.clone(),
                "/refund",
                refund_body(nomor, refunded).to_string(),
            ));
            requests.push((
                app.admin.clone(),
                "/refund",
                refund_body(nomor, "45.45").to_string(),
            ));
        }
        requests.push((
            app.merchant.clone(),
            "/transaction",
            transaction_body(&users[round % 2], "200", "0", "200", "1", 3),
        ));
        let ids: Vec<String> = requests.iter().map(|_| fresh_id()).collect();
        let rs = futures_util::future::join_all(requests.iter().zip(&ids).map(
            |((key, path, body), id)| {
                app.send(key, "POST", path, Some(id), Some(body.as_bytes()), &[])
            },
        ))
        .await;
        for (r, (key, _, _)) in rs.iter().zip(&requests) {
            assert_eq!(r.status, 202, "{}", r.body);
            calls.push((
                key.clone(),
                r.body["api_call_id"].as_str().expect("id").to_owned(),
            ));
        }
    }
    let mut refunded = 0;
    for (key, call) in &calls {
        let s = app.wait_final(key, call).await;
        assert!(
            s["status"] == "APPROVED"
                || s["reason"] == "OVERPAYMENT"
                || s["reason"] == "REFUND_EXCEEDS"
                || s["reason"] == "INSUFFICIENT_LIMIT",
            "{s}"
        );
        if s["type"] == "REFUND" && s["status"] == "APPROVED" {
            refunded += 1;
        }
    }
    assert!(refunded > 0, "some refunds were approved");
    assert_limit_equation(&app.pool).await;
    assert_contracts_consistent(&app.pool).await;
    app.shutdown().await;
}

/// Per contract: the paid and refunded totals match their rows, the installments' cancelled
/// parts add up to what refunds took off the bill, nothing is paid or cancelled beyond an
/// installment, and a cancelled contract has nothing left unpaid.
async fn assert_contracts_consistent(pool: &sqlx::MySqlPool) {
    let rows: Vec<(String, Decimal, Decimal, Decimal)> = sqlx::query_as(
        "SELECT nomor_kontrak, jumlah_cicilan, terbayar, total_refund FROM transactions",
    )
    .fetch_all(pool)
    .await
    .expect("contracts");
    for (nomor, total, paid, refunded) in rows {
        let (harga, terbayar, dibatalkan, overfull): (Decimal, Decimal, Decimal, i64) =
            sqlx::query_as(
                "SELECT SUM(harga_cicilan), SUM(terbayar), SUM(dibatalkan),
                        CAST(SUM(terbayar + dibatalkan > harga_cicilan) AS SIGNED)
                 FROM monthly_billings WHERE nomor_kontrak = ?",
            )
            .bind(&nomor)
            .fetch_one(pool)
            .await
            .expect("installments");
        let (bills,): (Option<Decimal>,) =
            sqlx::query_as("SELECT SUM(terbayarkan) FROM bills WHERE nomor_kontrak = ?")
                .bind(&nomor)
                .fetch_one(pool)
                .await
                .expect("bills");
        let (jumlah, mengurangi, dikembalikan): (
            Option<Decimal>,
            Option<Decimal>,
            Option<Decimal>,
        ) = sqlx::query_as(
            "SELECT SUM(jumlah), SUM(mengurangi_tagihan), SUM(dikembalikan_ke_konsumen)
                 FROM refunds WHERE nomor_kontrak = ?",
        )
        .bind(&nomor)
        .fetch_one(pool)
        .await
        .expect("refunds");
        assert_eq!(harga, total, "{nomor}");
        assert_eq!(
            overfull, 0,
            "{nomor}: an installment paid or cancelled beyond its price"
        );
        assert_eq!(terbayar, paid, "{nomor}: installments paid vs contract");
        assert_eq!(
            bills.unwrap_or_default(),
            paid,
            "{nomor}: bills vs contract"
        );
        assert_eq!(
            jumlah.unwrap_or_default(),
            refunded,
            "{nomor}: refunds vs contract"
        );
        assert_eq!(
            mengurangi.unwrap_or_default(),
            dibatalkan,
            "{nomor}: cancelled parts"
        );
        assert!(refunded <= total, "{nomor}: refunded beyond the contract");
        assert!(
            dikembalikan.unwrap_or_default() <= paid,
            "{nomor}: more owed back than was paid"
        );
        if refunded == total {
            assert_eq!(
                terbayar + dibatalkan,
                total,
                "{nomor}: cancelled with something unpaid"
            );
        }
    }
}
