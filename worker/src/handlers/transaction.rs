//! A checkout: debit the tenor's limit with one conditional update (never read-then-write),
//! then the contract and all its installments.

use crate::unit::{CommandError, Verdict, approved};
use chrono::NaiveDateTime;
use shared::contract::{Schedule, Tenor, schedule};
use shared::db::contracts::{ContractView, InstallmentView};
use shared::db::users::{LimitsMap, get_limits};
use shared::db::{to_naive, write_rows};
use shared::envelope::RejectReason;
use shared::messages::{Command, TransactionPayload};
use shared::money::Money;
use shared::status::format_instant;
use sqlx::{MySqlConnection, Row};

pub(crate) async fn apply(
    conn: &mut MySqlConnection,
    command: &Command,
    t: &TransactionPayload,
) -> Result<Verdict, CommandError> {
    // An id outside the shape every user id has cannot name a user (and must not reach an
    // ASCII-collated column comparison).
    if !shared::ids::is_plausible_id(&t.user_id) {
        return Ok(Verdict::Rejected(RejectReason::UserNotFound));
    }
    let draft = Draft::new(command, t)?;
    if !shared::db::cob::overdue_users(&mut *conn, &[t.user_id.as_str()])
        .await?
        .is_empty()
    {
        return Ok(Verdict::Rejected(RejectReason::UserOverdue));
    }
    let (_, available) = draft.tenor().limit_columns();
    let debited = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE user_limit_balances b JOIN users u ON u.user_id = b.user_id
         SET b.{available} = b.{available} - ?, b.updated_at = ?
         WHERE b.user_id = ? AND u.user_status = 'ACTIVE' AND b.{available} >= ?"
    )))
    .bind(draft.cost().value())
    .bind(draft.now)
    .bind(&t.user_id)
    .bind(draft.cost().value())
    .execute(&mut *conn)
    .await?;
    if debited.rows_affected() == 0 {
        return Ok(Verdict::Rejected(why_not(conn, &t.user_id).await?));
    }
    insert_contracts(conn, &[&draft]).await?;
    let limits = get_limits(&mut *conn, &t.user_id)
        .await?
        .ok_or_else(|| CommandError::Poison("limits vanished inside the transaction".into()))?;
    approved(&draft.into_view(limits))
}

/// A contract decided in memory: its number, schedule and installments, ready to be written.
pub(crate) struct Draft<'a> {
    command: &'a Command,
    t: &'a TransactionPayload,
    plan: Schedule,
    nomor_kontrak: String,
    installments: Vec<InstallmentView>,
    now: NaiveDateTime,
}

impl<'a> Draft<'a> {
    /// Computes the schedule. The ingress validated these terms; a command whose terms no
    /// longer compute is poison.
    pub(crate) fn new(
        command: &'a Command,
        t: &'a TransactionPayload,
    ) -> Result<Self, CommandError> {
        let plan = schedule(&t.terms, command.accepted_at)
            .map_err(|e| CommandError::Poison(e.to_string()))?;
        let installments = plan
            .installments
            .iter()
            .map(|i| InstallmentView {
                billing_id: shared::ids::new_billing_id(),
                cicilan_ke: i.cicilan_ke,
                harga_cicilan: i.harga_cicilan,
                terbayar: Money::ZERO,
                dibatalkan: Money::ZERO,
                denda: Money::ZERO,
                denda_terbayar: Money::ZERO,
                hari_terlambat: 0,
                tanggal_tagihan: i.tanggal_tagihan.format("%Y-%m-%d").to_string(),
                status: shared::contract::InstallmentStatus::Unpaid,
            })
            .collect();
        Ok(Draft {
            command,
            t,
            plan,
            nomor_kontrak: shared::ids::new_contract_number(),
            installments,
            now: to_naive(command.accepted_at),
        })
    }

    pub(crate) fn tenor(&self) -> Tenor {
        self.t.terms.tenor
    }

    /// What the contract takes from the tenor's available limit.
    pub(crate) fn cost(&self) -> Money {
        self.plan.jumlah_cicilan
    }

    /// The contract as the outcome reports it, with the user's limits after it.
    pub(crate) fn into_view(self, limits: LimitsMap) -> ContractView {
        let terms = &self.t.terms;
        ContractView {
            nomor_kontrak: self.nomor_kontrak,
            user_id: self.t.user_id.clone(),
            tanggal_kontrak: format_instant(&self.command.accepted_at),
            otr: terms.otr,
            admin_fee: terms.admin_fee,
            harga_aset: terms.harga_aset,
            pokok: self.plan.pokok,
            bunga_persen: terms.bunga_persen,
            jumlah_bunga: self.plan.jumlah_bunga,
            jumlah_cicilan: self.plan.jumlah_cicilan,
            cicilan_bulanan: self.plan.cicilan_bulanan,
            tenor: terms.tenor,
            nama_aset: self.t.nama_aset.clone(),
            status_kontrak: shared::contract::ContractStatus::Active,
            total_refund: Money::ZERO,
            tagihan: self.installments,
            limit_tersisa: limits,
        }
    }
}

/// The head of a multi-row write of installments: new ones here, paid and refunded ones in
/// `ledger` (as an upsert).
pub(crate) const INSERT_BILLINGS: &str = "INSERT INTO monthly_billings (billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor,
    harga_cicilan, terbayar, dibatalkan, status, tanggal_tagihan) ";

/// Writes contracts and all their installments: two multi-row writes whatever their number
/// (`shared::db::write_rows`).
pub(crate) async fn insert_contracts(
    conn: &mut MySqlConnection,
    drafts: &[&Draft<'_>],
) -> Result<(), sqlx::Error> {
    if drafts.is_empty() {
        return Ok(());
    }
    write_rows(
        conn,
        "INSERT INTO transactions (nomor_kontrak, user_id, merchant_id, external_id, api_call_id, tanggal_kontrak,
            tanggal_update, otr, admin_fee, harga_aset, pokok, bunga_persen, jumlah_bunga, jumlah_cicilan,
            cicilan_bulanan, tenor, nama_aset) ",
        "",
        drafts,
        |mut b, &d| {
            let terms = &d.t.terms;
            b.push_bind(&d.nomor_kontrak)
                .push_bind(&d.t.user_id)
                .push_bind(&d.command.merchant_id)
                .push_bind(&d.command.external_id)
                .push_bind(&d.command.api_call_id)
                .push_bind(d.now)
                .push_bind(d.now)
                .push_bind(terms.otr.value())
                .push_bind(terms.admin_fee.value())
                .push_bind(terms.harga_aset.value())
                .push_bind(d.plan.pokok.value())
                .push_bind(terms.bunga_persen.value())
                .push_bind(d.plan.jumlah_bunga.value())
                .push_bind(d.plan.jumlah_cicilan.value())
                .push_bind(d.plan.cicilan_bulanan.value())
                .push_bind(terms.tenor.months() as u8)
                .push_bind(&d.t.nama_aset);
        },
    )
    .await?;

    let rows: Vec<_> = drafts
        .iter()
        .flat_map(|&d| {
            d.plan
                .installments
                .iter()
                .zip(&d.installments)
                .map(move |(plan_i, view)| (d, plan_i, view))
        })
        .collect();
    write_rows(
        conn,
        INSERT_BILLINGS,
        "",
        &rows,
        |mut b, &(d, plan_i, view)| {
            b.push_bind(&view.billing_id)
                .push_bind(&d.nomor_kontrak)
                .push_bind(&d.t.user_id)
                .push_bind(plan_i.cicilan_ke as u8)
                .push_bind(&d.t.nama_aset)
                .push_bind(d.t.terms.tenor.months() as u8)
                .push_bind(plan_i.harga_cicilan.value())
                .push_bind(Money::ZERO.value())
                .push_bind(Money::ZERO.value())
                .push_bind("UNPAID")
                .push_bind(plan_i.tanggal_tagihan);
        },
    )
    .await?;
    Ok(())
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
