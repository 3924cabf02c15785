//! A checkout: debit the tenor's limit with one conditional update (never read-then-write),
//! then the contract and all its installments.

use crate::unit::{CommandError, Verdict};
use serde_json::json;
use shared::contract::schedule;
use shared::db::contracts::{ContractView, InstallmentView};
use shared::db::to_naive;
use shared::db::users::get_limits;
use shared::envelope::RejectReason;
use shared::messages::{Command, TransactionPayload};
use shared::status::format_instant;
use sqlx::{MySqlConnection, QueryBuilder, Row};

pub async fn apply(
    conn: &mut MySqlConnection,
    command: &Command,
    t: &TransactionPayload,
) -> Result<Verdict, CommandError> {
    // An id outside the shape every user id has cannot name a user (and must not reach an
    // ASCII-collated column comparison).
    if !shared::ids::is_plausible_id(&t.user_id) {
        return Ok(Verdict::Rejected(RejectReason::UserNotFound));
    }
    let terms = &t.terms;
    // The ingress validated these terms; a command that no longer computes is poison.
    let plan =
        schedule(terms, command.accepted_at).map_err(|e| CommandError::Poison(e.to_string()))?;
    let tenor = terms.tenor;
    let (_, available) = tenor.limit_columns();
    let now = to_naive(command.accepted_at);

    let debited = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE user_limit_balances b JOIN users u ON u.user_id = b.user_id
         SET b.{available} = b.{available} - ?, b.updated_at = ?
         WHERE b.user_id = ? AND u.user_status = 'ACTIVE' AND b.{available} >= ?"
    )))
    .bind(plan.jumlah_cicilan.value())
    .bind(now)
    .bind(&t.user_id)
    .bind(plan.jumlah_cicilan.value())
    .execute(&mut *conn)
    .await?;
    if debited.rows_affected() == 0 {
        return Ok(Verdict::Rejected(why_not(conn, &t.user_id).await?));
    }

    let nomor_kontrak = shared::ids::new_contract_number();
    sqlx::query(
        "INSERT INTO transactions (nomor_kontrak, user_id, merchant_id, external_id, api_call_id, tanggal_kontrak,
            tanggal_update, otr, admin_fee, harga_aset, pokok, bunga_persen, jumlah_bunga, jumlah_cicilan,
            cicilan_bulanan, tenor, nama_aset)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&nomor_kontrak)
    .bind(&t.user_id)
    .bind(&command.merchant_id)
    .bind(&command.external_id)
    .bind(&command.api_call_id)
    .bind(now)
    .bind(now)
    .bind(terms.otr.value())
    .bind(terms.admin_fee.value())
    .bind(terms.harga_aset.value())
    .bind(plan.pokok.value())
    .bind(terms.bunga_persen.value())
    .bind(plan.jumlah_bunga.value())
    .bind(plan.jumlah_cicilan.value())
    .bind(plan.cicilan_bulanan.value())
    .bind(tenor.months() as u8)
    .bind(&t.nama_aset)
    .execute(&mut *conn)
    .await?;

    let installments: Vec<InstallmentView> = plan
        .installments
        .iter()
        .map(|i| InstallmentView {
            billing_id: shared::ids::new_billing_id(),
            cicilan_ke: i.cicilan_ke,
            harga_cicilan: i.harga_cicilan,
            terbayar: shared::money::Money::ZERO,
            tanggal_tagihan: i.tanggal_tagihan.format("%Y-%m-%d").to_string(),
            status: shared::contract::InstallmentStatus::Unpaid,
        })
        .collect();
    let mut insert = QueryBuilder::new(
        "INSERT INTO monthly_billings (billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor,
            harga_cicilan, terbayar, status, tanggal_tagihan) ",
    );
    insert.push_values(
        plan.installments.iter().zip(&installments),
        |mut b, (plan_i, view)| {
            b.push_bind(&view.billing_id)
                .push_bind(&nomor_kontrak)
                .push_bind(&t.user_id)
                .push_bind(plan_i.cicilan_ke as u8)
                .push_bind(&t.nama_aset)
                .push_bind(tenor.months() as u8)
                .push_bind(plan_i.harga_cicilan.value())
                .push_bind(rust_decimal::Decimal::ZERO)
                .push_bind("UNPAID")
                .push_bind(plan_i.tanggal_tagihan);
        },
    );
    insert.build().execute(&mut *conn).await?;

    let limits = get_limits(&mut *conn, &t.user_id)
        .await?
        .ok_or_else(|| CommandError::Poison("limits vanished inside the transaction".into()))?;
    let contract = ContractView {
        nomor_kontrak,
        user_id: t.user_id.clone(),
        tanggal_kontrak: format_instant(&command.accepted_at),
        otr: terms.otr,
        admin_fee: terms.admin_fee,
        harga_aset: terms.harga_aset,
        pokok: plan.pokok,
        bunga_persen: terms.bunga_persen,
        jumlah_bunga: plan.jumlah_bunga,
        jumlah_cicilan: plan.jumlah_cicilan,
        cicilan_bulanan: plan.cicilan_bulanan,
        tenor,
        nama_aset: t.nama_aset.clone(),
        tagihan: installments,
        limit_tersisa: limits,
    };
    Ok(Verdict::Approved(json!(contract)))
}

/// The conditional debit touched nothing: find out why.
async fn why_not(conn: &mut MySqlConnection, user_id: &str) -> Result<RejectReason, CommandError> {
    let row = sqlx::query("SELECT user_status FROM users WHERE user_id = ?")
        .bind(user_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        None => RejectReason::UserNotFound,
        Some(r) => {
            let status: String = r.try_get("user_status")?;
            if status == "ACTIVE" {
                RejectReason::InsufficientLimit
            } else {
                RejectReason::UserNotActive
            }
        }
    })
}
