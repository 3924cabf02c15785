//! POST /payment, the bills and billings reads, and limits restored by payments.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::HashSet;

#[sqlx::test(migrations = "../migrations")]
async fn spec_example_paid_in_two_parts(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    // A 1100.00 contract: 1000 otr + 100 admin fee, 2.5 % over 3 months.
    let body = transaction_body(&user, "1000.00", "100.00", "900.00", "2.5", 3);
    let r = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(body.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = r.data()["result"].clone();
    let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
    let other_tenor_before = app.limits(&user).await["1"].clone();

    let first = pay(&app, &nomor, "500.00").await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert_eq!(first.data()["type"], "PAYMENT");
    let bill = &first.data()["result"];
    assert_eq!(bill["status_bayar"], "PARTIAL");
    assert_eq!(bill["terbayarkan"], "500.00");
    assert_eq!(bill["total_tagihan"], "1182.50");
    assert_eq!(bill["sisa_tagihan_bulanan"], "682.50");
    assert_eq!(bill["sisa_limit"], "499317.50");
    assert_eq!(bill["nomor_kontrak"], nomor.as_str());
    assert!(
        bill["kode_bayar"]
            .as_str()
            .expect("kode")
            .starts_with("PAY_")
    );
    assert_eq!(bill["alokasi"].as_array().map(Vec::len), Some(2));

    let read = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let tagihan = read.data()["tagihan"].as_array().expect("tagihan").clone();
    let paid: Vec<(&str, &str, &str)> = tagihan
        .iter()
        .map(|t| {
            (
                t["harga_cicilan"].as_str().expect("h"),
                t["terbayar"].as_str().expect("t"),
                t["status"].as_str().expect("s"),
            )
        })
        .collect();
    assert_eq!(
        paid,
        [
            ("394.17", "394.17", "PAID"),
            ("394.17", "105.83", "PARTIAL"),
            ("394.16", "0.00", "UNPAID")
        ]
    );

    // One cent too much is rejected and changes nothing.
    let over = pay(&app, &nomor, "682.51").await;
    assert_eq!(over.status, 400, "{}", over.body);
    assert_eq!(over.action(), "OVERPAYMENT");
    let unchanged = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert_eq!(unchanged.data()["tagihan"], Value::Array(tagihan));
    assert_eq!(app.limits(&user).await["3"]["available"], "499317.50");

    let last = pay(&app, &nomor, "682.50").await;
    assert_eq!(last.status, 201, "{}", last.body);
    assert_eq!(last.data()["result"]["status_bayar"], "SUCCESS");
    assert_eq!(last.data()["result"]["sisa_tagihan_bulanan"], "0.00");
    let limits = app.limits(&user).await;
    assert_eq!(limits["3"]["available"], "500000.00");
    assert_eq!(
        limits["1"], other_tenor_before,
        "a payment restores only its own tenor"
    );
    let settled = app.get(&app.merchant, &format!("/contracts/{nomor}")).await;
    assert!(
        settled.data()["tagihan"]
            .as_array()
            .expect("t")
            .iter()
            .all(|t| t["status"] == "PAID")
    );

    let again = pay(&app, &nomor, "0.01").await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert_eq!(again.action(), "OVERPAYMENT");

    let bills = app.get(&app.admin, &format!("/users/{user}/bills")).await;
    assert_eq!(bills.status, 200, "{}", bills.body);
    let items = bills.data()["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "only approved payments are bills");
    assert_eq!(items[0]["terbayarkan"], "500.00");
    assert_eq!(items[1]["terbayarkan"], "682.50");
    assert_limit_equation(&app.pool).await;
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn payment_rules(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let c = contract(&app, &user, "1000", "0", "0", 2).await;
    let nomor = c["nomor_kontrak"].as_str().expect("nomor");

    let unknown = pay(&app, "KTR_nope", "10").await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(unknown.action(), "CONTRACT_NOT_FOUND");

    for (jumlah, field) in [
        ("0", "jumlah"),
        ("-1", "jumlah"),
        ("1.001", "jumlah"),
        ("\"abc\"", "jumlah"),
    ] {
        let body = format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":{jumlah}}}"#);
        let r = app
            .send(
                &app.admin,
                "POST",
                "/payment",
                Some(&fresh_id()),
                Some(body.as_bytes()),
                &[],
            )
            .await;
        assert_eq!(r.status, 400, "{jumlah}: {}", r.body);
        assert_eq!(r.action(), "INVALID_VALUE");
        assert!(r.message().contains(field));
    }
    let r = app
        .post(
            &app.admin,
            "/payment",
            &fresh_id(),
            &json!({"nomor_kontrak": nomor}),
        )
        .await;
    assert_eq!(r.action(), "INVALID_MANDATORY");

    // Merchants may not pay, nor read another merchant's contract.
    let r = app
        .post(
            &app.merchant,
            "/payment",
            &fresh_id(),
            &json!({"nomor_kontrak": nomor, "jumlah": 1}),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.action(), "FORBIDDEN");
    let r = app
        .get(&app.other_merchant, &format!("/contracts/{nomor}"))
        .await;
    assert_eq!(r.status, 404);

    // A payment's external id is its own: used twice → 409 naming the first.
    let ext = fresh_id();
    let body = json!({"nomor_kontrak": nomor, "jumlah": 10});
    let first = app.post_wait(&app.admin, "/payment", &ext, &body).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let second = app.post(&app.admin, "/payment", &ext, &body).await;
    assert_eq!(second.status, 409);
    assert_eq!(
        second.data()["original_api_call_id"],
        first.body["api_call_id"]
    );
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn interleaved_payments_and_transactions_keep_the_equation(pool: sqlx::MySqlPool) {
    let mut app = spawn_app_with(pool, 2).await;
    app.add_worker();
    let user = app.create_user(["3000", "3000", "3000", "3000"]).await;
    let mut contracts = Vec::new();
    for tenor in [1, 2, 3, 6, 1, 2, 3, 6] {
        contracts.push(contract(&app, &user, "300", "0", "1", tenor).await);
    }
    // Now, concurrently: new transactions on the same user and tenors, and payments that
    // restore them, some of them overpaying.
    let mut calls = Vec::new();
    for round in 0..6 {
        let mut futures = Vec::new();
        for (i, c) in contracts.iter().enumerate() {
            let nomor = c["nomor_kontrak"].as_str().expect("nomor").to_owned();
            let amount = ["50", "100.01", "75.5", "400"][(i + round) % 4];
            let body = format!(r#"{{"nomor_kontrak":"{nomor}","jumlah":{amount}}}"#);
            futures.push((app.admin.clone(), "/payment", body));
            let tenor = c["tenor"].as_u64().expect("tenor") as u32;
            futures.push((
                app.merchant.clone(),
                "/transaction",
                transaction_body(&user, "120", "0", "120", "2", tenor),
            ));
        }
        let ids: Vec<String> = futures.iter().map(|_| fresh_id()).collect();
        let rs = futures_util::future::join_all(futures.iter().zip(&ids).map(
            |((key, path, body), id)| {
                app.send(key, "POST", path, Some(id), Some(body.as_bytes()), &[])
            },
        ))
        .await;
        for (r, (key, _, _)) in rs.iter().zip(&futures) {
            assert_eq!(r.status, 202, "{}", r.body);
            calls.push((
                key.clone(),
                r.body["api_call_id"].as_str().expect("id").to_owned(),
            ));
        }
    }
    for (key, call) in &calls {
        let s = app.wait_final(key, call).await;
        assert!(
            s["status"] == "APPROVED"
                || s["reason"] == "OVERPAYMENT"
                || s["reason"] == "INSUFFICIENT_LIMIT",
            "{s}"
        );
    }
    assert_limit_equation(&app.pool).await;
    // Paid amounts per installment never exceed the installment, and add up per contract.
    let bad: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM transactions t WHERE t.terbayar <> (SELECT SUM(b.terbayar) FROM monthly_billings b WHERE b.nomor_kontrak = t.nomor_kontrak)",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(bad, 0);
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn paging_through_billings_returns_every_installment_once(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let mut expected = HashSet::new();
    for tenor in [6, 3, 1] {
        let c = contract(&app, &user, "1000", "0", "1", tenor).await;
        for t in c["tagihan"].as_array().expect("tagihan") {
            expected.insert(t["billing_id"].as_str().expect("id").to_owned());
        }
    }
    assert_eq!(expected.len(), 10);
    let mut seen = Vec::new();
    let mut previous: Option<(String, String)> = None;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/users/{user}/billings?limit=2&cursor={c}"),
            None => format!("/users/{user}/billings?limit=2"),
        };
        let r = app.get(&app.admin, &path).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.data()["items"].as_array().expect("items");
        assert!(items.len() <= 2);
        for it in items {
            let key = (
                it["tanggal_tagihan"].as_str().expect("d").to_owned(),
                it["billing_id"].as_str().expect("b").to_owned(),
            );
            if let Some(p) = &previous {
                assert!(*p < key, "ordered by (tanggal_tagihan, billing_id)");
            }
            previous = Some(key.clone());
            seen.push(key.1);
        }
        match r.data()["next_cursor"].as_str() {
            Some(c) => {
                assert!(
                    c.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
                    "{c}"
                );
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen.len(), 10, "every installment exactly once");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);

    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "cursor=abc",
        "cursor=0000000000000000AAAA",
    ] {
        let r = app
            .get(&app.admin, &format!("/users/{user}/billings?{bad}"))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert_eq!(r.action(), "INVALID_VALUE");
        let field = bad.split('=').next().expect("name");
        assert!(r.message().contains(field), "{bad}: {}", r.body);
    }
    // A cursor issued for another user is not accepted.
    let other = app.create_user(["100", "100", "100", "100"]).await;
    let first = app
        .get(&app.admin, &format!("/users/{user}/billings?limit=2"))
        .await;
    let c = first.data()["next_cursor"].as_str().expect("cursor");
    let r = app
        .get(&app.admin, &format!("/users/{other}/billings?cursor={c}"))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        app.get(&app.admin, "/users/USR_nope/billings").await.status,
        404
    );
    app.shutdown().await;
}
