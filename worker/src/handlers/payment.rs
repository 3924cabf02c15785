//! A payment: allocate it to the contract's unpaid installments in order, restore the tenor's
//! limit by the amount paid, and write the bill.

use crate::unit::{CommandError, Verdict, approved, note_change};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use shared::contract::{
    Allocation, InstallmentStatus, OpenInstallment, StatusBayar, Tenor, allocate,
};
use shared::db::contracts::BillView;
use shared::db::users::LockedLimits;
use shared::db::{push_in_list, to_naive, write_rows};
use shared::envelope::RejectReason;
use shared::messages::{Command, PaymentPayload};
use shared::money::Money;
use shared::status::format_instant;
use sqlx::{MySqlConnection, QueryBuilder, Row};
use std::collections::{BTreeMap, BTreeSet};

fn money(row: &sqlx::mysql::MySqlRow, col: &str) -> Result<Money, CommandError> {
    let d: rust_decimal::Decimal = row.try_get(col)?;
    Money::new(d).map_err(|e| CommandError::Poison(format!("{col}: {e}")))
}

pub(crate) async fn apply(
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
    let bill = bill(
        command,
        p,
        &user_id,
        alokasi,
        outstanding_before,
        sisa_limit,
    )?;
    insert_bills(conn, std::slice::from_ref(&bill)).await?;
    approved(&bill.view)
}

/// A bill, ready to be written and reported.
pub(crate) struct Bill<'a> {
    command: &'a Command,
    view: BillView,
}

/// The bill of a payment that `allocate` accepted.
fn bill<'a>(
    command: &'a Command,
    p: &PaymentPayload,
    user_id: &str,
    alokasi: Vec<Allocation>,
    outstanding_before: Money,
    sisa_limit: Money,
) -> Result<Bill<'a>, CommandError> {
    let outstanding_after = outstanding_before
        .checked_sub(p.jumlah)
        .ok_or_else(|| CommandError::Poison("negative outstanding".into()))?;
    Ok(Bill {
        command,
        view: BillView {
            kode_bayar: shared::ids::new_payment_code(),
            nomor_kontrak: p.nomor_kontrak.clone(),
            user_id: user_id.to_owned(),
            terbayarkan: p.jumlah,
            total_tagihan: outstanding_before,
            sisa_tagihan_bulanan: outstanding_after,
            tanggal_bayar: format_instant(&command.accepted_at),
            sisa_limit,
            status_bayar: StatusBayar::leaving(outstanding_after),
            alokasi,
        },
    })
}

/// Writes bills in one multi-row statement.
async fn insert_bills(conn: &mut MySqlConnection, bills: &[Bill<'_>]) -> Result<(), CommandError> {
    if bills.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(bills.len());
    for b in bills {
        let alokasi = serde_json::to_string(&b.view.alokasi)
            .map_err(|e| CommandError::Poison(e.to_string()))?;
        rows.push((b, alokasi));
    }
    write_rows(
        conn,
        "INSERT INTO bills (kode_bayar, nomor_kontrak, user_id, merchant_id, external_id, api_call_id, terbayarkan,
            total_tagihan, sisa_tagihan_bulanan, tanggal_bayar, sisa_limit, status_bayar, alokasi) ",
        "",
        &rows,
        |mut q, (b, alokasi)| {
            let v = &b.view;
            q.push_bind(&v.kode_bayar)
                .push_bind(&v.nomor_kontrak)
                .push_bind(&v.user_id)
                .push_bind(&b.command.merchant_id)
                .push_bind(&b.command.external_id)
                .push_bind(&b.command.api_call_id)
                .push_bind(v.terbayarkan.value())
                .push_bind(v.total_tagihan.value())
                .push_bind(v.sisa_tagihan_bulanan.value())
                .push_bind(to_naive(b.command.accepted_at))
                .push_bind(v.sisa_limit.value())
                .push_bind(v.status_bayar.as_str())
                .push_bind(alokasi);
        },
    )
    .await?;
    Ok(())
}

/// An installment row as the set-based path reads it (every column, so it can be written
/// back in one upsert).
struct Installment {
    billing_id: String,
    nomor_kontrak: String,
    user_id: String,
    cicilan_ke: u8,
    nama_aset: String,
    tenor: u8,
    harga_cicilan: Money,
    terbayar: Money,
    tanggal_tagihan: chrono::NaiveDate,
    changed: bool,
}

/// The payments of a batch, decided together on rows locked once: the contracts and all
/// their installments in two locking reads, the allocations in memory in the order given,
/// then one upsert of the installments, one update per paid contract and one insert of the
/// bills. The limits are restored in `users` (already locked by the batch, and written by
/// the caller); `touched` records when each user's limits last changed.
pub(crate) async fn apply_many(
    conn: &mut MySqlConnection,
    payments: &[(&Command, &PaymentPayload)],
    users: &mut BTreeMap<String, LockedLimits>,
    touched: &mut BTreeMap<String, NaiveDateTime>,
) -> Result<Vec<Verdict>, CommandError> {
    let numbers: BTreeSet<&str> = payments
        .iter()
        .map(|(_, p)| p.nomor_kontrak.as_str())
        .filter(|n| shared::ids::is_plausible_id(n))
        .collect();
    let mut contracts: BTreeMap<String, (String, Tenor)> = BTreeMap::new();
    let mut installments: BTreeMap<String, Vec<Installment>> = BTreeMap::new();
    if !numbers.is_empty() {
        // FORCE INDEX here and below: lock only the named rows, even where the optimizer
        // would scan a small table (see `lock_limits`).
        let mut query = QueryBuilder::new(
            "SELECT nomor_kontrak, user_id, tenor FROM transactions FORCE INDEX (PRIMARY)
             WHERE nomor_kontrak IN ",
        );
        push_in_list(&mut query, numbers.iter().copied());
        query.push(" FOR UPDATE");
        for row in query.build().fetch_all(&mut *conn).await? {
            let tenor: u8 = row.try_get("tenor")?;
            let tenor = Tenor::from_months(u32::from(tenor))
                .ok_or_else(|| CommandError::Poison(format!("contract with tenor {tenor}")))?;
            contracts.insert(
                row.try_get("nomor_kontrak")?,
                (row.try_get("user_id")?, tenor),
            );
        }
        let mut query = QueryBuilder::new(
            "SELECT billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor, harga_cicilan, terbayar,
                tanggal_tagihan FROM monthly_billings FORCE INDEX (monthly_billings_contract)
             WHERE nomor_kontrak IN ",
        );
        push_in_list(&mut query, numbers.iter().copied());
        query.push(" ORDER BY nomor_kontrak, cicilan_ke FOR UPDATE");
        for row in query.build().fetch_all(&mut *conn).await? {
            let nomor: String = row.try_get("nomor_kontrak")?;
            installments
                .entry(nomor.clone())
                .or_default()
                .push(Installment {
                    billing_id: row.try_get("billing_id")?,
                    nomor_kontrak: nomor,
                    user_id: row.try_get("user_id")?,
                    cicilan_ke: row.try_get("cicilan_ke")?,
                    nama_aset: row.try_get("nama_aset")?,
                    tenor: row.try_get("tenor")?,
                    harga_cicilan: money(&row, "harga_cicilan")?,
                    terbayar: money(&row, "terbayar")?,
                    tanggal_tagihan: row.try_get("tanggal_tagihan")?,
                    changed: false,
                });
        }
    }

    let mut verdicts = Vec::with_capacity(payments.len());
    let mut bills = Vec::new();
    let mut paid: BTreeMap<&str, (Decimal, NaiveDateTime)> = BTreeMap::new();
    for (command, p) in payments {
        let Some((user_id, tenor)) = contracts.get(&p.nomor_kontrak) else {
            verdicts.push(Verdict::Rejected(RejectReason::ContractNotFound));
            continue;
        };
        let rows = installments.entry(p.nomor_kontrak.clone()).or_default();
        let open: Vec<OpenInstallment> = rows
            .iter()
            .map(|i| OpenInstallment {
                billing_id: i.billing_id.clone(),
                cicilan_ke: u32::from(i.cicilan_ke),
                harga_cicilan: i.harga_cicilan,
                terbayar: i.terbayar,
            })
            .collect();
        let Ok((alokasi, outstanding_before)) = allocate(&open, p.jumlah) else {
            verdicts.push(Verdict::Rejected(RejectReason::Overpayment));
            continue;
        };
        for a in &alokasi {
            let row = rows
                .iter_mut()
                .find(|i| i.billing_id == a.billing_id)
                .ok_or_else(|| {
                    CommandError::Poison("allocation to an unknown installment".into())
                })?;
            row.terbayar = row
                .terbayar
                .checked_add(a.jumlah)
                .ok_or_else(|| CommandError::Poison("installment overflow".into()))?;
            row.changed = true;
        }
        let paid_at = to_naive(command.accepted_at);
        let entry = paid
            .entry(p.nomor_kontrak.as_str())
            .or_insert((Decimal::ZERO, paid_at));
        entry.0 += p.jumlah.value();
        entry.1 = entry.1.max(paid_at);
        let pair = users
            .get_mut(user_id)
            .and_then(|u| u.limits.0.get_mut(tenor.key()))
            .ok_or_else(|| CommandError::Poison("the contract's owner was not locked".into()))?;
        pair.available = pair
            .available
            .checked_add(p.jumlah)
            .ok_or_else(|| CommandError::Poison("limit overflow".into()))?;
        let sisa_limit = pair.available;
        note_change(touched, user_id, paid_at);
        let bill = bill(command, p, user_id, alokasi, outstanding_before, sisa_limit)?;
        verdicts.push(approved(&bill.view)?);
        bills.push(bill);
    }

    let changed: Vec<&Installment> = installments
        .values()
        .flatten()
        .filter(|i| i.changed)
        .collect();
    if !changed.is_empty() {
        // Every row exists and is locked: the upsert only ever updates (see write_limits).
        write_rows(
            conn,
            super::transaction::INSERT_BILLINGS,
            " ON DUPLICATE KEY UPDATE terbayar = VALUES(terbayar), status = VALUES(status)",
            &changed,
            |mut b, i| {
                b.push_bind(&i.billing_id)
                    .push_bind(&i.nomor_kontrak)
                    .push_bind(&i.user_id)
                    .push_bind(i.cicilan_ke)
                    .push_bind(&i.nama_aset)
                    .push_bind(i.tenor)
                    .push_bind(i.harga_cicilan.value())
                    .push_bind(i.terbayar.value())
                    .push_bind(InstallmentStatus::of(i.harga_cicilan, i.terbayar).as_str())
                    .push_bind(i.tanggal_tagihan);
            },
        )
        .await?;
    }
    for (nomor, (amount, at)) in &paid {
        sqlx::query("UPDATE transactions SET terbayar = terbayar + ?, tanggal_update = ? WHERE nomor_kontrak = ?")
            .bind(amount)
            .bind(at)
            .bind(nomor)
            .execute(&mut *conn)
            .await?;
    }
    insert_bills(conn, &bills).await?;
    Ok(verdicts)
}
