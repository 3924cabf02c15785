//! A payment: allocate it to the contract's unpaid installments in order, restore the tenor's
//! limit by the amount paid, and write the bill. Its contract is locked and written back by
//! `ledger`.

use super::ledger::{Ledger, restore_limit};
use crate::unit::{CommandError, Verdict, approved};
use chrono::NaiveDateTime;
use shared::contract::{Allocation, StatusBayar, allocate};
use shared::db::contracts::BillView;
use shared::db::users::LockedLimits;
use shared::db::{to_naive, write_rows};
use shared::envelope::RejectReason;
use shared::messages::{Command, PaymentPayload};
use shared::money::Money;
use shared::status::format_instant;
use sqlx::MySqlConnection;
use std::collections::BTreeMap;

/// Decides one payment on the locked `ledger`: allocated in `cicilan_ke` order, each
/// installment's unpaid fee before its unpaid part, the tenor's limit restored by the part paid
/// to installments, the bill added to `bills`.
pub(crate) fn decide<'c>(
    ledger: &mut Ledger,
    users: &mut BTreeMap<String, LockedLimits>,
    touched: &mut BTreeMap<String, NaiveDateTime>,
    command: &'c Command,
    p: &PaymentPayload,
    bills: &mut Vec<Bill<'c>>,
) -> Result<Verdict, CommandError> {
    let Some((contract, open)) = ledger.open(&p.nomor_kontrak) else {
        return Ok(Verdict::Rejected(RejectReason::ContractNotFound));
    };
    let Ok((alokasi, outstanding_before)) = allocate(&open, p.jumlah) else {
        return Ok(Verdict::Rejected(RejectReason::Overpayment));
    };
    let (user_id, tenor) = (contract.user_id.clone(), contract.tenor);
    let paid_at = to_naive(command.accepted_at);
    ledger.pay(&p.nomor_kontrak, &alokasi, paid_at)?;
    // Only what went to installments restores the limit; fees never touch limits (SPEC §12).
    let to_installments = Money::new(alokasi.iter().map(|a| a.jumlah.value()).sum())
        .map_err(|e| CommandError::Poison(format!("allocation: {e}")))?;
    let limits = restore_limit(users, touched, &user_id, tenor, to_installments, paid_at)?;
    let sisa_limit = limits
        .get(tenor)
        .map(|pair| pair.available)
        .ok_or_else(|| CommandError::Poison("a tenor without limits".into()))?;
    let bill = bill(
        command,
        p,
        &user_id,
        alokasi,
        outstanding_before,
        sisa_limit,
    )?;
    let verdict = approved(&bill.view)?;
    bills.push(bill);
    Ok(verdict)
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
pub(crate) async fn insert_bills(
    conn: &mut MySqlConnection,
    bills: &[Bill<'_>],
) -> Result<(), CommandError> {
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
