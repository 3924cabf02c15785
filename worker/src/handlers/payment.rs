//! A payment: allocate it to the contract's unpaid installments in order, restore the tenor's
//! limit by the amount paid, and write the bill.

use crate::unit::{CommandError, Verdict};
use serde_json::json;
use shared::contract::{InstallmentStatus, OpenInstallment, Tenor, allocate};
use shared::db::contracts::BillView;
use shared::db::to_naive;
use shared::envelope::RejectReason;
use shared::messages::{Command, PaymentPayload};
use shared::money::Money;
use shared::status::format_instant;
use sqlx::{MySqlConnection, Row};

fn money(row: &sqlx::mysql::MySqlRow, col: &str) -> Result<Money, CommandError> {
    let d: rust_decimal::Decimal = row.try_get(col)?;
    Money::new(d).map_err(|e| CommandError::Poison(format!("{col}: {e}")))
}

pub async fn apply(
    conn: &mut MySqlConnection,
    command: &Command,
    p: &PaymentPayload,
) -> Result<Verdict, CommandError> {
    // An id outside the shape every contract number has cannot name a contract (and must not
    // reach an ASCII-collated column comparison).
    if !shared::ids::is_plausible_id(&p.nomor_kontrak) {
        return Ok(Verdict::Rejected(RejectReason::ContractNotFound));
    }
    let contract =
        sqlx::query("SELECT user_id, tenor FROM transactions WHERE nomor_kontrak = ? FOR UPDATE")
            .bind(&p.nomor_kontrak)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(contract) = contract else {
        return Ok(Verdict::Rejected(RejectReason::ContractNotFound));
    };
    let user_id: String = contract.try_get("user_id")?;
    let tenor: u8 = contract.try_get("tenor")?;
    let tenor = Tenor::from_months(u32::from(tenor))
        .ok_or_else(|| CommandError::Poison(format!("contract with tenor {tenor}")))?;

    let rows = sqlx::query(
        "SELECT billing_id, cicilan_ke, harga_cicilan, terbayar FROM monthly_billings
         WHERE nomor_kontrak = ? ORDER BY cicilan_ke FOR UPDATE",
    )
    .bind(&p.nomor_kontrak)
    .fetch_all(&mut *conn)
    .await?;
    let mut open = Vec::with_capacity(rows.len());
    for r in &rows {
        let k: u8 = r.try_get("cicilan_ke")?;
        open.push(OpenInstallment {
            billing_id: r.try_get("billing_id")?,
            cicilan_ke: u32::from(k),
            harga_cicilan: money(r, "harga_cicilan")?,
            terbayar: money(r, "terbayar")?,
        });
    }
    let Ok((alokasi, outstanding_before)) = allocate(&open, p.jumlah) else {
        return Ok(Verdict::Rejected(RejectReason::Overpayment));
    };
    let paid_at = to_naive(command.accepted_at);

    for a in &alokasi {
        let inst = open
            .iter()
            .find(|i| i.billing_id == a.billing_id)
            .ok_or_else(|| CommandError::Poison("allocation to an unknown installment".into()))?;
        let paid = inst
            .terbayar
            .checked_add(a.jumlah)
            .ok_or_else(|| CommandError::Poison("installment overflow".into()))?;
        sqlx::query("UPDATE monthly_billings SET terbayar = ?, status = ? WHERE billing_id = ?")
            .bind(paid.value())
            .bind(InstallmentStatus::of(inst.harga_cicilan, paid).as_str())
            .bind(&a.billing_id)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::query("UPDATE transactions SET terbayar = terbayar + ?, tanggal_update = ? WHERE nomor_kontrak = ?")
        .bind(p.jumlah.value())
        .bind(paid_at)
        .bind(&p.nomor_kontrak)
        .execute(&mut *conn)
        .await?;
    let (_, available) = tenor.limit_columns();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE user_limit_balances SET {available} = {available} + ?, updated_at = ? WHERE user_id = ?"
    )))
    .bind(p.jumlah.value())
    .bind(paid_at)
    .bind(&user_id)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {available} AS available FROM user_limit_balances WHERE user_id = ?"
    )))
    .bind(&user_id)
    .fetch_one(&mut *conn)
    .await?;
    let sisa_limit = money(&row, "available")?;
    let outstanding_after = outstanding_before
        .checked_sub(p.jumlah)
        .ok_or_else(|| CommandError::Poison("negative outstanding".into()))?;
    let status_bayar = if outstanding_after.is_zero() {
        "SUCCESS"
    } else {
        "PARTIAL"
    };
    let kode_bayar = shared::ids::new_payment_code();
    let alokasi_json =
        serde_json::to_string(&alokasi).map_err(|e| CommandError::Poison(e.to_string()))?;
    sqlx::query(
        "INSERT INTO bills (kode_bayar, nomor_kontrak, user_id, merchant_id, external_id, api_call_id, terbayarkan,
            total_tagihan, sisa_tagihan_bulanan, tanggal_bayar, sisa_limit, status_bayar, alokasi)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&kode_bayar)
    .bind(&p.nomor_kontrak)
    .bind(&user_id)
    .bind(&command.merchant_id)
    .bind(&command.external_id)
    .bind(&command.api_call_id)
    .bind(p.jumlah.value())
    .bind(outstanding_before.value())
    .bind(outstanding_after.value())
    .bind(paid_at)
    .bind(sisa_limit.value())
    .bind(status_bayar)
    .bind(alokasi_json)
    .execute(&mut *conn)
    .await?;
    let bill = BillView {
        kode_bayar,
        nomor_kontrak: p.nomor_kontrak.clone(),
        user_id,
        terbayarkan: p.jumlah,
        total_tagihan: outstanding_before,
        sisa_tagihan_bulanan: outstanding_after,
        tanggal_bayar: format_instant(&command.accepted_at),
        sisa_limit,
        status_bayar: status_bayar.to_owned(),
        alokasi,
    };
    Ok(Verdict::Approved(json!(bill)))
}
