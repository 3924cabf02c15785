//! Contracts with their installments, payments (bills), and the paginated reads.

use super::users::{LimitsMap, get_limits_many};
use super::{DbError, from_naive, push_in_list};
use crate::contract::{Allocation, ContractStatus, InstallmentStatus, StatusBayar, Tenor};
use crate::money::{Money, Rate};
use crate::status::format_instant;
use chrono::NaiveDate;
use serde::Serialize;
use sqlx::mysql::MySqlRow;
use sqlx::{MySql, MySqlPool, QueryBuilder, Row};
use std::collections::BTreeMap;

/// One installment of a contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Installment))]
#[serde(deny_unknown_fields)]
pub struct InstallmentView {
    pub billing_id: String,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 6))]
    pub cicilan_ke: u32,
    pub harga_cicilan: Money,
    pub terbayar: Money,
    /// Cancelled by refunds; the unpaid part is `harga_cicilan - terbayar - dibatalkan`.
    pub dibatalkan: Money,
    /// Late fees charged (SPEC §12).
    pub denda: Money,
    pub denda_terbayar: Money,
    /// Days past due as of the last closed business date; 0 when not overdue.
    pub hari_terlambat: u32,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Date))]
    pub tanggal_tagihan: String,
    pub status: InstallmentStatus,
}

impl InstallmentView {
    /// What is still to pay on it.
    pub fn unpaid(&self) -> rust_decimal::Decimal {
        self.harga_cicilan.value() - self.terbayar.value() - self.dibatalkan.value()
    }

    /// Its late fees still to pay.
    pub fn unpaid_fee(&self) -> rust_decimal::Decimal {
        self.denda.value() - self.denda_terbayar.value()
    }
}

/// A contract (SPEC §6): the terms, the computed amounts, the installments in `cicilan_ke`
/// order, and the user's limits (right after approval in a status, now in `GET /contracts`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Contract))]
#[serde(deny_unknown_fields)]
pub struct ContractView {
    #[cfg_attr(
        feature = "openapi",
        schema(example = "KTR_0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    )]
    pub nomor_kontrak: String,
    pub user_id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub tanggal_kontrak: String,
    pub otr: Money,
    pub admin_fee: Money,
    pub harga_aset: Money,
    pub pokok: Money,
    pub bunga_persen: Rate,
    pub jumlah_bunga: Money,
    pub jumlah_cicilan: Money,
    pub cicilan_bulanan: Money,
    pub tenor: Tenor,
    pub nama_aset: String,
    pub status_kontrak: ContractStatus,
    /// Σ approved refunds.
    pub total_refund: Money,
    pub tagihan: Vec<InstallmentView>,
    pub limit_tersisa: LimitsMap,
}

/// A refund (SPEC §9).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Refund))]
#[serde(deny_unknown_fields)]
pub struct RefundView {
    #[cfg_attr(
        feature = "openapi",
        schema(example = "RFD_4b3a29180716f5e4d3c2b1a098f7e6d5")
    )]
    pub kode_refund: String,
    pub nomor_kontrak: String,
    pub user_id: String,
    pub jumlah: Money,
    /// Cancelled from unpaid installments; the tenor's available limit grew by it.
    pub mengurangi_tagihan: Money,
    /// The rest of `jumlah`: already paid, owed back to the consumer.
    pub dikembalikan_ke_konsumen: Money,
    /// Cancelled per installment, last installment first.
    pub alokasi: Vec<Allocation>,
    /// Σ unpaid parts after the refund.
    pub sisa_tagihan: Money,
    pub status_kontrak: ContractStatus,
    /// The user's limits right after the refund.
    pub limit_tersisa: LimitsMap,
    pub alasan: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub tanggal_refund: String,
}

/// A payment (SPEC §6).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Bill))]
#[serde(deny_unknown_fields)]
pub struct BillView {
    #[cfg_attr(
        feature = "openapi",
        schema(example = "PAY_8e7d6c5b4a3928171615141312111009")
    )]
    pub kode_bayar: String,
    pub nomor_kontrak: String,
    pub user_id: String,
    pub terbayarkan: Money,
    /// Outstanding before the payment.
    pub total_tagihan: Money,
    /// Outstanding after the payment.
    pub sisa_tagihan_bulanan: Money,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::openapi::Instant))]
    pub tanggal_bayar: String,
    /// Available limit of the contract's tenor after the payment.
    pub sisa_limit: Money,
    /// `SUCCESS` when nothing is outstanding after it.
    pub status_bayar: StatusBayar,
    pub alokasi: Vec<Allocation>,
}

/// Before any row: DATETIME's own lower bound (chrono's MIN does not encode).
const KEYSET_START: chrono::NaiveDateTime = match NaiveDate::from_ymd_opt(1000, 1, 1) {
    Some(d) => d.and_time(chrono::NaiveTime::MIN),
    None => chrono::NaiveDateTime::MIN,
};

pub(crate) fn money(row: &MySqlRow, col: &str) -> Result<Money, DbError> {
    let d: rust_decimal::Decimal = row.try_get(col)?;
    Money::new(d).map_err(|e| DbError::Corrupt(format!("{col}: {e}")))
}

/// The installment columns [`installment_from_row`] reads.
/// The last closed business date comes along for `hari_terlambat` (an uncorrelated subquery,
/// read once per statement).
const INSTALLMENT_COLUMNS: &str = "billing_id, cicilan_ke, harga_cicilan, terbayar, dibatalkan, denda, denda_terbayar, tanggal_tagihan, overdue_since, (SELECT MAX(business_date) FROM business_dates) AS last_closed";

/// `closing`: the business date a COB is closing in this transaction, counted as closed.
fn installment_from_row(
    r: &MySqlRow,
    closing: Option<NaiveDate>,
) -> Result<InstallmentView, DbError> {
    let harga = money(r, "harga_cicilan")?;
    let terbayar = money(r, "terbayar")?;
    let dibatalkan = money(r, "dibatalkan")?;
    let due: NaiveDate = r.try_get("tanggal_tagihan")?;
    let k: u8 = r.try_get("cicilan_ke")?;
    let denda = money(r, "denda")?;
    let denda_terbayar = money(r, "denda_terbayar")?;
    let overdue_since: Option<NaiveDate> = r.try_get("overdue_since")?;
    let last_closed: Option<NaiveDate> = r.try_get("last_closed")?;
    let last_closed = last_closed.max(closing);
    let fee_owed = denda > denda_terbayar;
    let outstanding = terbayar.value() + dibatalkan.value() < harga.value() || fee_owed;
    let hari_terlambat = match (overdue_since, last_closed) {
        (Some(_), Some(last)) if outstanding => u32::try_from((last - due).num_days()).unwrap_or(0),
        _ => 0,
    };
    // PAID means nothing outstanding, fees included (SPEC §12).
    let status = match InstallmentStatus::of(harga, terbayar, dibatalkan) {
        InstallmentStatus::Paid if fee_owed => InstallmentStatus::Partial,
        status => status,
    };
    Ok(InstallmentView {
        billing_id: r.try_get("billing_id")?,
        cicilan_ke: u32::from(k),
        harga_cicilan: harga,
        terbayar,
        dibatalkan,
        denda,
        denda_terbayar,
        hari_terlambat,
        tanggal_tagihan: due.format("%Y-%m-%d").to_string(),
        status,
    })
}

/// The status of a contract whose installments are `tagihan`.
pub fn contract_status(
    jumlah_cicilan: Money,
    total_refund: Money,
    tagihan: &[InstallmentView],
) -> Result<ContractStatus, DbError> {
    // Outstanding includes unpaid fees (SPEC §12): a contract owing only fees is not paid off.
    let outstanding = Money::new(tagihan.iter().map(|i| i.unpaid() + i.unpaid_fee()).sum())
        .map_err(|e| DbError::Corrupt(format!("outstanding: {e}")))?;
    Ok(ContractStatus::of(
        jumlah_cicilan,
        total_refund,
        outstanding,
    ))
}

/// A contract as it is now, with its merchant (for the ownership check).
pub async fn load_contract(
    pool: &MySqlPool,
    nomor_kontrak: &str,
) -> Result<Option<(String, ContractView)>, DbError> {
    let mut conn = pool.acquire().await?;
    load_contract_on(&mut conn, nomor_kontrak).await
}

/// [`load_contract`] on a given connection: inside a transaction, the contract as that
/// transaction leaves it (a webhook event's `data`).
pub async fn load_contract_on(
    conn: &mut sqlx::MySqlConnection,
    nomor_kontrak: &str,
) -> Result<Option<(String, ContractView)>, DbError> {
    load_contract_closing(conn, nomor_kontrak, None).await
}

/// [`load_contract_on`] inside a COB for `closing`: `hari_terlambat` counts to that date,
/// which is recorded as closed only when its last chunk commits.
pub async fn load_contract_closing(
    conn: &mut sqlx::MySqlConnection,
    nomor_kontrak: &str,
    closing: Option<NaiveDate>,
) -> Result<Option<(String, ContractView)>, DbError> {
    Ok(load_contracts_closing(conn, [nomor_kontrak], closing)
        .await?
        .remove(nomor_kontrak))
}

/// [`load_contract_closing`] for many contracts in three queries (the contracts, their
/// installments, their users' limits), by contract number; contracts that do not exist are
/// absent. `nomors` may name a contract more than once.
pub async fn load_contracts_closing<'a>(
    conn: &mut sqlx::MySqlConnection,
    nomors: impl IntoIterator<Item = &'a str>,
    closing: Option<NaiveDate>,
) -> Result<BTreeMap<String, (String, ContractView)>, DbError> {
    let rows = contract_rows(&mut *conn, nomors).await?;
    let all = rows.nomors()?;
    rows.closing(conn, all.iter().map(String::as_str), closing)
        .await
}

/// Contracts' own rows, read first when what else to read depends on them (their merchants,
/// say); [`ContractRows::closing`] completes the contracts wanted.
pub struct ContractRows(Vec<MySqlRow>);

/// Reads the rows of the contracts `nomors` names, in one query.
pub async fn contract_rows<'a>(
    conn: &mut sqlx::MySqlConnection,
    nomors: impl IntoIterator<Item = &'a str>,
) -> Result<ContractRows, DbError> {
    let nomors: std::collections::BTreeSet<&str> = nomors.into_iter().collect();
    if nomors.is_empty() {
        return Ok(ContractRows(Vec::new()));
    }
    let mut query = QueryBuilder::<MySql>::new(
        "SELECT nomor_kontrak, user_id, merchant_id, tanggal_kontrak, otr, admin_fee, harga_aset, pokok, \
                bunga_persen, jumlah_bunga, jumlah_cicilan, cicilan_bulanan, tenor, nama_aset, total_refund \
         FROM transactions WHERE nomor_kontrak IN ",
    );
    push_in_list(&mut query, nomors.iter().copied());
    Ok(ContractRows(query.build().fetch_all(&mut *conn).await?))
}

impl ContractRows {
    /// The contract numbers read.
    fn nomors(&self) -> Result<Vec<String>, DbError> {
        Ok(self
            .0
            .iter()
            .map(|r| r.try_get("nomor_kontrak"))
            .collect::<Result<_, _>>()?)
    }

    /// The merchant that sold each contract read, by contract number.
    pub fn owners(&self) -> Result<BTreeMap<String, String>, DbError> {
        let mut owners = BTreeMap::new();
        for r in &self.0 {
            owners.insert(r.try_get("nomor_kontrak")?, r.try_get("merchant_id")?);
        }
        Ok(owners)
    }

    /// The contracts of `wanted` among those read, with their installments and their users'
    /// limits (two more queries), each with its merchant, as [`load_contracts_closing`].
    pub async fn closing<'a>(
        &self,
        conn: &mut sqlx::MySqlConnection,
        wanted: impl IntoIterator<Item = &'a str>,
        closing: Option<NaiveDate>,
    ) -> Result<BTreeMap<String, (String, ContractView)>, DbError> {
        let wanted: std::collections::BTreeSet<&str> = wanted.into_iter().collect();
        let mut contracts = Vec::new();
        for r in &self.0 {
            let nomor: &str = r.try_get("nomor_kontrak")?;
            if wanted.contains(nomor) {
                contracts.push(r);
            }
        }
        if contracts.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut query = QueryBuilder::<MySql>::new(format!(
            "SELECT nomor_kontrak, {INSTALLMENT_COLUMNS} FROM monthly_billings WHERE nomor_kontrak IN "
        ));
        push_in_list(&mut query, wanted.iter().copied());
        query.push(" ORDER BY nomor_kontrak, cicilan_ke");
        let mut installments: BTreeMap<String, Vec<InstallmentView>> = BTreeMap::new();
        for r in query.build().fetch_all(&mut *conn).await? {
            installments
                .entry(r.try_get("nomor_kontrak")?)
                .or_default()
                .push(installment_from_row(&r, closing)?);
        }
        let users: Vec<String> = contracts
            .iter()
            .map(|r| r.try_get("user_id"))
            .collect::<Result<_, _>>()?;
        let limits = get_limits_many(&mut *conn, &users).await?;
        let mut views = BTreeMap::new();
        for r in contracts {
            let nomor: String = r.try_get("nomor_kontrak")?;
            let user_id: String = r.try_get("user_id")?;
            let limits = limits
                .get(&user_id)
                .cloned()
                .ok_or_else(|| DbError::Corrupt("contract without limits".into()))?;
            let tagihan = installments.remove(&nomor).unwrap_or_default();
            let view = contract_view(r, user_id, tagihan, limits)?;
            views.insert(nomor, (r.try_get("merchant_id")?, view));
        }
        Ok(views)
    }
}

/// A contract's row, with its installments and its user's limits, as `GET /contracts` shows it.
fn contract_view(
    r: &MySqlRow,
    user_id: String,
    tagihan: Vec<InstallmentView>,
    limits: LimitsMap,
) -> Result<ContractView, DbError> {
    let tenor: u8 = r.try_get("tenor")?;
    let rate: rust_decimal::Decimal = r.try_get("bunga_persen")?;
    let signed: chrono::NaiveDateTime = r.try_get("tanggal_kontrak")?;
    let jumlah_cicilan = money(r, "jumlah_cicilan")?;
    let total_refund = money(r, "total_refund")?;
    Ok(ContractView {
        nomor_kontrak: r.try_get("nomor_kontrak")?,
        user_id,
        tanggal_kontrak: format_instant(&from_naive(signed)),
        otr: money(r, "otr")?,
        admin_fee: money(r, "admin_fee")?,
        harga_aset: money(r, "harga_aset")?,
        pokok: money(r, "pokok")?,
        bunga_persen: Rate::new(rate)
            .map_err(|e| DbError::Corrupt(format!("bunga_persen: {e}")))?,
        jumlah_bunga: money(r, "jumlah_bunga")?,
        jumlah_cicilan,
        cicilan_bulanan: money(r, "cicilan_bulanan")?,
        tenor: Tenor::from_months(u32::from(tenor))
            .ok_or_else(|| DbError::Corrupt(format!("tenor {tenor}")))?,
        nama_aset: r.try_get("nama_aset")?,
        status_kontrak: contract_status(jumlah_cicilan, total_refund, &tagihan)?,
        total_refund,
        tagihan,
        limit_tersisa: limits,
    })
}

/// The owner of each of `contracts` that exists, by contract number. A contract's owner never
/// changes, so a plain read is as good as a locking one.
pub async fn owners_of<'e, E>(
    executor: E,
    contracts: Vec<&str>,
) -> Result<BTreeMap<String, String>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    if contracts.is_empty() {
        return Ok(BTreeMap::new());
    }
    let mut query = QueryBuilder::new(
        "SELECT nomor_kontrak, user_id FROM transactions WHERE nomor_kontrak IN ",
    );
    push_in_list(&mut query, contracts);
    let rows: Vec<(String, String)> = query.build_query_as().fetch_all(executor).await?;
    Ok(rows.into_iter().collect())
}

/// One page of a user's installments in (`tanggal_tagihan`, `billing_id`) order, after the
/// keyset position `after`.
pub async fn billings_page<'e, E>(
    executor: E,
    user_id: &str,
    after: Option<(NaiveDate, String)>,
    limit: u32,
) -> Result<Vec<(String, InstallmentView)>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    let (date, id) = after.unwrap_or((KEYSET_START.date(), String::new()));
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT nomor_kontrak, {INSTALLMENT_COLUMNS}
         FROM monthly_billings
         WHERE user_id = ? AND (tanggal_tagihan > ? OR (tanggal_tagihan = ? AND billing_id > ?))
         ORDER BY tanggal_tagihan, billing_id
         LIMIT ?"
    )))
    .bind(user_id)
    .bind(date)
    .bind(date)
    .bind(id)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("nomor_kontrak")?, installment_from_row(r, None)?)))
        .collect()
}

pub(crate) fn bill_from_row(r: &MySqlRow) -> Result<BillView, DbError> {
    let paid_at: chrono::NaiveDateTime = r.try_get("tanggal_bayar")?;
    let alokasi: String = r.try_get("alokasi")?;
    Ok(BillView {
        kode_bayar: r.try_get("kode_bayar")?,
        nomor_kontrak: r.try_get("nomor_kontrak")?,
        user_id: r.try_get("user_id")?,
        terbayarkan: money(r, "terbayarkan")?,
        total_tagihan: money(r, "total_tagihan")?,
        sisa_tagihan_bulanan: money(r, "sisa_tagihan_bulanan")?,
        tanggal_bayar: format_instant(&from_naive(paid_at)),
        sisa_limit: money(r, "sisa_limit")?,
        status_bayar: {
            let s: String = r.try_get("status_bayar")?;
            StatusBayar::parse(&s).ok_or_else(|| DbError::Corrupt(format!("status_bayar: {s}")))?
        },
        alokasi: serde_json::from_str(&alokasi)
            .map_err(|e| DbError::Corrupt(format!("alokasi: {e}")))?,
    })
}

/// One page of a user's payments in (`tanggal_bayar`, `kode_bayar`) order.
pub async fn bills_page<'e, E>(
    executor: E,
    user_id: &str,
    after: Option<(chrono::NaiveDateTime, String)>,
    limit: u32,
) -> Result<Vec<BillView>, DbError>
where
    E: sqlx::Executor<'e, Database = MySql>,
{
    let (at, id) = after.unwrap_or((KEYSET_START, String::new()));
    let rows = sqlx::query(
        "SELECT kode_bayar, nomor_kontrak, user_id, terbayarkan, total_tagihan, sisa_tagihan_bulanan,
                tanggal_bayar, sisa_limit, status_bayar, alokasi
         FROM bills
         WHERE user_id = ? AND (tanggal_bayar > ? OR (tanggal_bayar = ? AND kode_bayar > ?))
         ORDER BY tanggal_bayar, kode_bayar
         LIMIT ?",
    )
    .bind(user_id)
    .bind(at)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.iter().map(bill_from_row).collect()
}
