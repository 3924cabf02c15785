//! A refund: cancel unpaid installment parts from the last installment backwards, give the
//! cancelled amount back to the tenor's limit, owe the rest back to the consumer, and write
//! the refund. Its contract is locked and written back by `ledger`.

use super::ledger::{Ledger, restore_limit};
use crate::unit::{CommandError, Verdict, approved};
use chrono::NaiveDateTime;
use shared::contract::ContractStatus;
use shared::db::contracts::RefundView;
use shared::db::keys::PLATFORM_MERCHANT;
use shared::db::users::LockedLimits;
use shared::db::{to_naive, write_rows};
use shared::envelope::RejectReason;
use shared::messages::{Command, RefundPayload};
use shared::refund::split_refund;
use shared::status::format_instant;
use sqlx::MySqlConnection;
use std::collections::BTreeMap;

/// A refund, ready to be written and reported.
pub(crate) struct Refund<'a> {
    command: &'a Command,
    view: RefundView,
}

/// Decides one refund on the locked `ledger`, adding the approved refund to `refunds`. A
/// merchant's refund of another merchant's contract is `CONTRACT_NOT_FOUND`, as for an
/// unknown one; the platform (admin keys) may refund any contract.
pub(crate) fn decide<'c>(
    ledger: &mut Ledger,
    users: &mut BTreeMap<String, LockedLimits>,
    touched: &mut BTreeMap<String, NaiveDateTime>,
    command: &'c Command,
    r: &RefundPayload,
    refunds: &mut Vec<Refund<'c>>,
) -> Result<Verdict, CommandError> {
    let Some((contract, open)) = ledger.open(&r.nomor_kontrak).filter(|(c, _)| {
        c.merchant_id == command.merchant_id || command.merchant_id == PLATFORM_MERCHANT
    }) else {
        return Ok(Verdict::Rejected(RejectReason::ContractNotFound));
    };
    let refundable = contract
        .jumlah_cicilan
        .checked_sub(contract.total_refund)
        .ok_or_else(|| CommandError::Poison("refunds beyond the contract".into()))?;
    let Ok(split) = split_refund(&open, r.jumlah, refundable) else {
        return Ok(Verdict::Rejected(RejectReason::RefundExceeds));
    };
    let (user_id, tenor, jumlah_cicilan) = (
        contract.user_id.clone(),
        contract.tenor,
        contract.jumlah_cicilan,
    );
    let at = to_naive(command.accepted_at);
    let total_refund = ledger.refund(&r.nomor_kontrak, r.jumlah, &split.alokasi, at)?;
    let status_kontrak = ContractStatus::of(jumlah_cicilan, total_refund, split.sisa_tagihan);
    let limits = restore_limit(
        users,
        touched,
        &user_id,
        tenor,
        split.mengurangi_tagihan,
        at,
    )?;
    let refund = Refund {
        command,
        view: RefundView {
            kode_refund: shared::ids::new_refund_code(),
            nomor_kontrak: r.nomor_kontrak.clone(),
            user_id,
            jumlah: r.jumlah,
            mengurangi_tagihan: split.mengurangi_tagihan,
            dikembalikan_ke_konsumen: split.dikembalikan_ke_konsumen,
            alokasi: split.alokasi,
            sisa_tagihan: split.sisa_tagihan,
            status_kontrak,
            limit_tersisa: limits.clone(),
            alasan: r.alasan.clone(),
            tanggal_refund: format_instant(&command.accepted_at),
        },
    };
    let verdict = approved(&refund.view)?;
    refunds.push(refund);
    Ok(verdict)
}

/// Writes refunds in one multi-row statement.
pub(crate) async fn insert_refunds(
    conn: &mut MySqlConnection,
    refunds: &[Refund<'_>],
) -> Result<(), CommandError> {
    if refunds.is_empty() {
        return Ok(());
    }
    let mut rows = Vec::with_capacity(refunds.len());
    for r in refunds {
        let alokasi = serde_json::to_string(&r.view.alokasi)
            .map_err(|e| CommandError::Poison(e.to_string()))?;
        rows.push((r, alokasi));
    }
    write_rows(
        conn,
        "INSERT INTO refunds (kode_refund, nomor_kontrak, user_id, merchant_id, external_id, api_call_id, jumlah,
            mengurangi_tagihan, dikembalikan_ke_konsumen, sisa_tagihan, alokasi, alasan, tanggal_refund) ",
        "",
        &rows,
        |mut q, (r, alokasi)| {
            let v = &r.view;
            q.push_bind(&v.kode_refund)
                .push_bind(&v.nomor_kontrak)
                .push_bind(&v.user_id)
                .push_bind(&r.command.merchant_id)
                .push_bind(&r.command.external_id)
                .push_bind(&r.command.api_call_id)
                .push_bind(v.jumlah.value())
                .push_bind(v.mengurangi_tagihan.value())
                .push_bind(v.dikembalikan_ke_konsumen.value())
                .push_bind(v.sisa_tagihan.value())
                .push_bind(alokasi)
                .push_bind(&v.alasan)
                .push_bind(to_naive(r.command.accepted_at));
        },
    )
    .await?;
    Ok(())
}
