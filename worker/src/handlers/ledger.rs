//! The contracts a batch's payments and refunds act on: locked once, in `nomor_kontrak`
//! order and after the owners' limits (the batch's one lock order, `unit::lock_users`),
//! changed in memory command by command, and written back in a few multi-row statements.

use super::{payment, refund};
use crate::unit::{CommandError, Verdict};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use shared::contract::{Allocation, InstallmentStatus, OpenInstallment, Tenor};
use shared::db::users::{LimitsMap, LockedLimits};
use shared::db::{fixed_size_chunks, push_in_list, write_rows};
use shared::messages::{Command, CommandPayload};
use shared::money::Money;
use sqlx::{MySql, MySqlConnection, QueryBuilder, Row};
use std::collections::{BTreeMap, BTreeSet};

pub(crate) fn money(row: &sqlx::mysql::MySqlRow, col: &str) -> Result<Money, CommandError> {
    let d: Decimal = row.try_get(col)?;
    Money::new(d).map_err(|e| CommandError::Poison(format!("{col}: {e}")))
}

/// A contract row, locked, with what this batch changed on it.
pub(crate) struct Contract {
    pub user_id: String,
    pub merchant_id: String,
    pub tenor: Tenor,
    pub jumlah_cicilan: Money,
    /// Σ approved refunds, this batch's included.
    pub total_refund: Money,
    paid: Decimal,
    refunded: Decimal,
    updated_at: Option<NaiveDateTime>,
}

/// An installment row (every column, so it can be written back in one upsert).
struct Installment {
    billing_id: String,
    nomor_kontrak: String,
    user_id: String,
    cicilan_ke: u8,
    nama_aset: String,
    tenor: u8,
    harga_cicilan: Money,
    terbayar: Money,
    dibatalkan: Money,
    denda: Money,
    denda_terbayar: Money,
    tanggal_tagihan: chrono::NaiveDate,
    changed: bool,
}

/// The write-back of changed installments: every column `INSERT_BILLINGS` has, and the fees.
/// `denda` is sent as read (never updated: COB owns it) so the candidate row passes the
/// `denda_terbayar <= denda` check the server applies before it finds the duplicate.
const UPSERT_BILLINGS: &str = "INSERT INTO monthly_billings (billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor,
    harga_cicilan, terbayar, dibatalkan, status, tanggal_tagihan, denda, denda_terbayar) ";

impl Installment {
    /// PAID means nothing outstanding, its fees included (SPEC §12).
    fn status(&self) -> InstallmentStatus {
        match InstallmentStatus::of(self.harga_cicilan, self.terbayar, self.dibatalkan) {
            InstallmentStatus::Paid if self.denda > self.denda_terbayar => {
                InstallmentStatus::Partial
            }
            status => status,
        }
    }
}

/// The locked contracts and their installments, by contract number.
pub(crate) struct Ledger {
    contracts: BTreeMap<String, Contract>,
    installments: BTreeMap<String, Vec<Installment>>,
}

impl Ledger {
    /// Locks `numbers` (those shaped like a contract number) and all their installments, in
    /// two locking reads.
    async fn lock(
        conn: &mut MySqlConnection,
        numbers: BTreeSet<&str>,
    ) -> Result<Ledger, CommandError> {
        let mut ledger = Ledger {
            contracts: BTreeMap::new(),
            installments: BTreeMap::new(),
        };
        let numbers: BTreeSet<&str> = numbers
            .into_iter()
            .filter(|n| shared::ids::is_plausible_id(n))
            .collect();
        if numbers.is_empty() {
            return Ok(ledger);
        }
        // FORCE INDEX here and below: lock only the named rows, even where the optimizer
        // would scan a small table (see `lock_limits`).
        let mut query = QueryBuilder::new(
            "SELECT nomor_kontrak, user_id, merchant_id, tenor, jumlah_cicilan, total_refund
             FROM transactions FORCE INDEX (PRIMARY) WHERE nomor_kontrak IN ",
        );
        push_in_list(&mut query, numbers.iter().copied());
        query.push(" ORDER BY nomor_kontrak FOR UPDATE");
        for row in query.build().fetch_all(&mut *conn).await? {
            let tenor: u8 = row.try_get("tenor")?;
            let tenor = Tenor::from_months(u32::from(tenor))
                .ok_or_else(|| CommandError::Poison(format!("contract with tenor {tenor}")))?;
            ledger.contracts.insert(
                row.try_get("nomor_kontrak")?,
                Contract {
                    user_id: row.try_get("user_id")?,
                    merchant_id: row.try_get("merchant_id")?,
                    tenor,
                    jumlah_cicilan: money(&row, "jumlah_cicilan")?,
                    total_refund: money(&row, "total_refund")?,
                    paid: Decimal::ZERO,
                    refunded: Decimal::ZERO,
                    updated_at: None,
                },
            );
        }
        let mut query = QueryBuilder::new(
            "SELECT billing_id, nomor_kontrak, user_id, cicilan_ke, nama_aset, tenor, harga_cicilan, terbayar,
                dibatalkan, denda, denda_terbayar, tanggal_tagihan FROM monthly_billings FORCE INDEX (monthly_billings_contract)
             WHERE nomor_kontrak IN ",
        );
        push_in_list(&mut query, numbers.iter().copied());
        query.push(" ORDER BY nomor_kontrak, cicilan_ke FOR UPDATE");
        for row in query.build().fetch_all(&mut *conn).await? {
            let nomor: String = row.try_get("nomor_kontrak")?;
            ledger
                .installments
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
                    dibatalkan: money(&row, "dibatalkan")?,
                    denda: money(&row, "denda")?,
                    denda_terbayar: money(&row, "denda_terbayar")?,
                    tanggal_tagihan: row.try_get("tanggal_tagihan")?,
                    changed: false,
                });
        }
        Ok(ledger)
    }

    /// The contract `nomor_kontrak`, if it exists, with its installments as the allocators
    /// see them.
    pub(crate) fn open(&self, nomor_kontrak: &str) -> Option<(&Contract, Vec<OpenInstallment>)> {
        let contract = self.contracts.get(nomor_kontrak)?;
        let open = self
            .installments
            .get(nomor_kontrak)
            .into_iter()
            .flatten()
            .map(|i| OpenInstallment {
                billing_id: i.billing_id.clone(),
                cicilan_ke: u32::from(i.cicilan_ke),
                harga_cicilan: i.harga_cicilan,
                terbayar: i.terbayar,
                dibatalkan: i.dibatalkan,
                denda: i.denda,
                denda_terbayar: i.denda_terbayar,
            })
            .collect();
        Some((contract, open))
    }

    /// Records a payment allocated as `alokasi`; the contract's `terbayar` counts only what
    /// went to installments (fees are not part of `jumlah_cicilan`).
    pub(crate) fn pay(
        &mut self,
        nomor_kontrak: &str,
        alokasi: &[Allocation],
        at: NaiveDateTime,
    ) -> Result<(), CommandError> {
        self.apply(nomor_kontrak, alokasi, at, |i, a| {
            i.terbayar = i.terbayar.checked_add(a.jumlah)?;
            i.denda_terbayar = i
                .denda_terbayar
                .checked_add(a.denda.unwrap_or(Money::ZERO))?;
            Some(())
        })?;
        let contract = self.contract_mut(nomor_kontrak)?;
        contract.paid += alokasi.iter().map(|a| a.jumlah.value()).sum::<Decimal>();
        Ok(())
    }

    /// Records a refund of `jumlah` that cancelled `alokasi`; returns the contract's
    /// `total_refund` after it.
    pub(crate) fn refund(
        &mut self,
        nomor_kontrak: &str,
        jumlah: Money,
        alokasi: &[Allocation],
        at: NaiveDateTime,
    ) -> Result<Money, CommandError> {
        self.apply(nomor_kontrak, alokasi, at, |i, a| {
            i.dibatalkan = i.dibatalkan.checked_add(a.jumlah)?;
            Some(())
        })?;
        let contract = self.contract_mut(nomor_kontrak)?;
        contract.refunded += jumlah.value();
        contract.total_refund = contract
            .total_refund
            .checked_add(jumlah)
            .ok_or_else(|| CommandError::Poison("total_refund overflow".into()))?;
        Ok(contract.total_refund)
    }

    fn contract_mut(&mut self, nomor_kontrak: &str) -> Result<&mut Contract, CommandError> {
        self.contracts
            .get_mut(nomor_kontrak)
            .ok_or_else(|| CommandError::Poison("a change to a contract not locked".into()))
    }

    fn apply(
        &mut self,
        nomor_kontrak: &str,
        alokasi: &[Allocation],
        at: NaiveDateTime,
        change: impl Fn(&mut Installment, &Allocation) -> Option<()>,
    ) -> Result<(), CommandError> {
        let rows = self
            .installments
            .get_mut(nomor_kontrak)
            .ok_or_else(|| CommandError::Poison("a contract without installments".into()))?;
        for a in alokasi {
            let row = rows
                .iter_mut()
                .find(|i| i.billing_id == a.billing_id)
                .ok_or_else(|| {
                    CommandError::Poison("allocation to an unknown installment".into())
                })?;
            change(row, a).ok_or_else(|| CommandError::Poison("installment overflow".into()))?;
            row.changed = true;
        }
        let contract = self.contract_mut(nomor_kontrak)?;
        contract.updated_at = Some(contract.updated_at.map_or(at, |u| u.max(at)));
        Ok(())
    }

    /// Writes back what changed: one upsert of the installments, one update of the changed
    /// contracts.
    async fn write(&self, conn: &mut MySqlConnection) -> Result<(), CommandError> {
        let changed: Vec<&Installment> = self
            .installments
            .values()
            .flatten()
            .filter(|i| i.changed)
            .collect();
        if !changed.is_empty() {
            // Every row exists and is locked: the upsert only ever updates (see write_limits).
            write_rows(
                conn,
                UPSERT_BILLINGS,
                " ON DUPLICATE KEY UPDATE terbayar = VALUES(terbayar), dibatalkan = VALUES(dibatalkan),
                    denda_terbayar = VALUES(denda_terbayar), status = VALUES(status)",
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
                        .push_bind(i.dibatalkan.value())
                        .push_bind(i.status().as_str())
                        .push_bind(i.tanggal_tagihan)
                        .push_bind(i.denda.value())
                        .push_bind(i.denda_terbayar.value());
                },
            )
            .await?;
        }
        let contracts: Vec<Changed<'_>> = self
            .contracts
            .iter()
            .filter_map(|(nomor, c)| c.updated_at.map(|at| (nomor, c, at)))
            .collect();
        // One statement for every changed contract (in power-of-two chunks, so its shapes
        // stay prepared): in a busy batch the contracts' updates were a quarter of all its
        // statements, one each. The rows are locked (`lock`, in this order), and FORCE INDEX
        // keeps the update on exactly the rows it names (see `lock`).
        for chunk in fixed_size_chunks(&contracts) {
            let mut query = QueryBuilder::new(
                "UPDATE transactions FORCE INDEX (PRIMARY) SET terbayar = terbayar + ",
            );
            push_case(&mut query, chunk, |c, _| c.paid);
            query.push(", total_refund = total_refund + ");
            push_case(&mut query, chunk, |c, _| c.refunded);
            query.push(", tanggal_update = ");
            push_case(&mut query, chunk, |_, at| at);
            query.push(" WHERE nomor_kontrak IN ");
            push_in_list(&mut query, chunk.iter().map(|(nomor, _, _)| nomor.as_str()));
            query.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// A changed contract as [`Ledger::write`] writes it back: its number, its row, and when it
/// last changed.
type Changed<'a> = (&'a String, &'a Contract, NaiveDateTime);

/// Appends `CASE nomor_kontrak WHEN ? THEN ? … END`: each contract of `chunk` with `value` of it.
fn push_case<T>(
    query: &mut QueryBuilder<MySql>,
    chunk: &[Changed<'_>],
    value: impl Fn(&Contract, NaiveDateTime) -> T,
) where
    T: for<'t> sqlx::Encode<'t, MySql> + sqlx::Type<MySql>,
{
    query.push("CASE nomor_kontrak");
    for &(nomor, c, at) in chunk {
        query
            .push(" WHEN ")
            .push_bind(nomor)
            .push(" THEN ")
            .push_bind(value(c, at));
    }
    query.push(" END");
}

/// Gives `amount` back to the available limit of `user_id`'s `tenor` (locked by the batch,
/// written by the caller) and returns the user's limits after it.
pub(crate) fn restore_limit<'u>(
    users: &'u mut BTreeMap<String, LockedLimits>,
    touched: &mut BTreeMap<String, NaiveDateTime>,
    user_id: &str,
    tenor: Tenor,
    amount: Money,
    at: NaiveDateTime,
) -> Result<&'u LimitsMap, CommandError> {
    let user = users
        .get_mut(user_id)
        .ok_or_else(|| CommandError::Poison("the contract's owner was not locked".into()))?;
    let pair = user
        .limits
        .0
        .get_mut(tenor.key())
        .ok_or_else(|| CommandError::Poison("a tenor without limits".into()))?;
    pair.available = pair
        .available
        .checked_add(amount)
        .ok_or_else(|| CommandError::Poison("limit overflow".into()))?;
    crate::unit::note_change(touched, user_id, at);
    Ok(&user.limits)
}

/// The payments and refunds of a batch (all of `commands` are one or the other), decided in
/// the order given on their contracts locked once, then written: the installments and
/// contracts, the bills, the refunds. The limits they restore are changed in `users`
/// (locked by the batch, written by the caller); `touched` records when each user's limits
/// last changed. One verdict per command, in order.
pub(crate) async fn apply_many(
    conn: &mut MySqlConnection,
    commands: &[&Command],
    users: &mut BTreeMap<String, LockedLimits>,
    touched: &mut BTreeMap<String, NaiveDateTime>,
) -> Result<Vec<Verdict>, CommandError> {
    let numbers = commands
        .iter()
        .filter_map(|c| c.payload.nomor_kontrak())
        .collect();
    let mut ledger = Ledger::lock(conn, numbers).await?;
    let mut verdicts = Vec::with_capacity(commands.len());
    let mut bills = Vec::new();
    let mut refunds = Vec::new();
    for command in commands {
        let verdict = match &command.payload {
            CommandPayload::Payment(p) => {
                payment::decide(&mut ledger, users, touched, command, p, &mut bills)?
            }
            CommandPayload::Refund(r) => {
                refund::decide(&mut ledger, users, touched, command, r, &mut refunds)?
            }
            CommandPayload::Transaction(_) => {
                return Err(CommandError::Poison(
                    "a transaction among a contract's commands".into(),
                ));
            }
        };
        verdicts.push(verdict);
    }
    ledger.write(conn).await?;
    payment::insert_bills(conn, &bills).await?;
    refund::insert_refunds(conn, &refunds).await?;
    Ok(verdicts)
}
