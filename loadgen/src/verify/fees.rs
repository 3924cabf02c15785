//! Late fees and what payments paid (SPEC §12), for every installment of the run's users:
//! fees within bounds; each approved payment's `alokasi`, as its stored result (`async_outcomes`)
//! shows it, adding up to what it paid; per installment, the payments' allocations adding up to
//! its `terbayar` and `denda_terbayar` (every payment on the run's users is the run's own);
//! `USER_OVERDUE` only for a user with an installment COB found overdue.

use super::{RunFacts, dec, rows_in};
use crate::run::{CallRecord, FinalSeen, Kind};
use anyhow::Result;
use chrono::NaiveDate;
use rust_decimal::Decimal;
use shared::contract::Allocation;
use shared::money::Money;
use sqlx::{MySqlPool, Row};
use std::collections::{HashMap, HashSet};

/// An installment as MySQL has it now.
#[derive(Debug, Clone)]
pub(super) struct Installment {
    pub(super) billing_id: String,
    pub(super) user_id: String,
    pub(super) harga_cicilan: Decimal,
    pub(super) terbayar: Decimal,
    pub(super) dibatalkan: Decimal,
    pub(super) denda: Decimal,
    pub(super) denda_terbayar: Decimal,
    pub(super) overdue_since: Option<NaiveDate>,
}

/// A bill of the run's users with its stored outcome.
#[derive(Debug, Clone)]
pub(super) struct StoredBill {
    pub(super) kode_bayar: String,
    pub(super) api_call_id: String,
    /// `bills.terbayarkan`.
    pub(super) terbayarkan: Decimal,
    /// `async_outcomes.status` and `.result` of its call (none without an outcome row).
    pub(super) status: Option<String>,
    pub(super) result: Option<String>,
}

/// The fields of an approved payment's result (SPEC §6's bill) these checks read.
#[derive(Debug, serde::Deserialize)]
pub(super) struct PaidBill {
    pub(super) terbayarkan: Money,
    pub(super) alokasi: Vec<Allocation>,
}

/// What the payments paid to one installment: its part, its fees.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Paid {
    pub(super) jumlah: Decimal,
    pub(super) denda: Decimal,
}

pub(super) async fn fees(
    pool: &MySqlPool,
    facts: &RunFacts<'_>,
    v: &mut Vec<String>,
) -> Result<()> {
    let installments = installments(pool, facts.users).await?;
    v.extend(installments.iter().filter_map(fee_bounds));
    let mut paid: HashMap<String, Paid> = HashMap::new();
    for bill in bills(pool, facts.users).await? {
        match read_bill(&bill) {
            Ok(b) => {
                v.extend(bill_adds_up(&bill, &b));
                for a in &b.alokasi {
                    let p = paid.entry(a.billing_id.clone()).or_default();
                    p.jumlah += a.jumlah.value();
                    p.denda += a.denda.map_or(Decimal::ZERO, Money::value);
                }
            }
            Err(e) => v.push(e),
        }
    }
    v.extend(installments_paid_as_allocated(&installments, paid));
    v.extend(overdue_rejections(
        &installments,
        facts.records,
        facts.finals,
    ));
    Ok(())
}

async fn installments(pool: &MySqlPool, users: &[String]) -> Result<Vec<Installment>> {
    let mut out = Vec::new();
    for r in rows_in(
        pool,
        "SELECT billing_id, user_id, harga_cicilan, terbayar, dibatalkan, denda, denda_terbayar, overdue_since
         FROM monthly_billings WHERE user_id IN",
        users,
        "",
    )
    .await?
    {
        out.push(Installment {
            billing_id: r.try_get("billing_id")?,
            user_id: r.try_get("user_id")?,
            harga_cicilan: dec(&r, "harga_cicilan")?,
            terbayar: dec(&r, "terbayar")?,
            dibatalkan: dec(&r, "dibatalkan")?,
            denda: dec(&r, "denda")?,
            denda_terbayar: dec(&r, "denda_terbayar")?,
            overdue_since: r.try_get("overdue_since")?,
        });
    }
    Ok(out)
}

/// Every bill on the run's users' contracts, with its call's stored outcome.
async fn bills(pool: &MySqlPool, users: &[String]) -> Result<Vec<StoredBill>> {
    let mut out = Vec::new();
    for r in rows_in(
        pool,
        "SELECT b.kode_bayar, b.api_call_id, b.terbayarkan, o.status, o.result
         FROM bills b LEFT JOIN async_outcomes o ON o.api_call_id = b.api_call_id
         WHERE b.user_id IN",
        users,
        "",
    )
    .await?
    {
        out.push(StoredBill {
            kode_bayar: r.try_get("kode_bayar")?,
            api_call_id: r.try_get("api_call_id")?,
            terbayarkan: dec(&r, "terbayarkan")?,
            status: r.try_get("status")?,
            result: r.try_get("result")?,
        });
    }
    Ok(out)
}

/// `0 <= denda_terbayar <= denda <= harga_cicilan` and `terbayar + dibatalkan <=
/// harga_cicilan`, neither negative.
pub(super) fn fee_bounds(i: &Installment) -> Option<String> {
    let fees_ok = Decimal::ZERO <= i.denda_terbayar
        && i.denda_terbayar <= i.denda
        && i.denda <= i.harga_cicilan;
    let parts_ok = i.terbayar >= Decimal::ZERO
        && i.dibatalkan >= Decimal::ZERO
        && i.terbayar + i.dibatalkan <= i.harga_cicilan;
    (!(fees_ok && parts_ok)).then(|| {
        format!(
            "installment {}: harga_cicilan {}, terbayar {}, dibatalkan {}, denda {}, denda_terbayar {} (want 0 <= denda_terbayar <= denda <= harga_cicilan, terbayar + dibatalkan <= harga_cicilan)",
            i.billing_id, i.harga_cicilan, i.terbayar, i.dibatalkan, i.denda, i.denda_terbayar
        )
    })
}

/// The bill's stored result, which its call's APPROVED outcome must carry.
pub(super) fn read_bill(b: &StoredBill) -> Result<PaidBill, String> {
    let (Some("APPROVED"), Some(result)) = (b.status.as_deref(), b.result.as_deref()) else {
        return Err(format!(
            "bill {} ({}): its call's outcome is {:?} with {} result, not APPROVED with the bill",
            b.kode_bayar,
            b.api_call_id,
            b.status,
            if b.result.is_some() { "a" } else { "no" }
        ));
    };
    serde_json::from_str(result).map_err(|e| {
        format!(
            "bill {} ({}): its stored result is not a bill with terbayarkan and alokasi: {e}",
            b.kode_bayar, b.api_call_id
        )
    })
}

/// Σ over its `alokasi` of (`jumlah` + `denda`) is the payment's `terbayarkan`, which is the
/// bill row's.
pub(super) fn bill_adds_up(b: &StoredBill, paid: &PaidBill) -> Option<String> {
    let allocated: Decimal = paid.alokasi.iter().map(Allocation::total).sum();
    let terbayarkan = paid.terbayarkan.value();
    (allocated != terbayarkan || terbayarkan != b.terbayarkan).then(|| {
        format!(
            "bill {} ({}): alokasi adds up to {allocated} (jumlah + denda), its result says terbayarkan {terbayarkan}, the bills row {}",
            b.kode_bayar, b.api_call_id, b.terbayarkan
        )
    })
}

/// Per installment, what the payments allocated to it is what it has paid: Σ `jumlah` its
/// `terbayar`, Σ `denda` its `denda_terbayar`; and no payment paid anything else.
pub(super) fn installments_paid_as_allocated(
    installments: &[Installment],
    mut paid: HashMap<String, Paid>,
) -> Vec<String> {
    let mut v = Vec::new();
    for i in installments {
        let p = paid.remove(&i.billing_id).unwrap_or_default();
        if p.jumlah != i.terbayar || p.denda != i.denda_terbayar {
            v.push(format!(
                "installment {}: terbayar {} and denda_terbayar {}, yet the payments' alokasi give it {} and {} in fees",
                i.billing_id, i.terbayar, i.denda_terbayar, p.jumlah, p.denda
            ));
        }
    }
    let mut strays: Vec<&String> = paid.keys().collect();
    strays.sort();
    for billing_id in strays {
        v.push(format!(
            "payments of the run's users allocated to {billing_id}, not an installment of theirs"
        ));
    }
    v
}

/// Every transaction rejected `USER_OVERDUE` is of a user with an installment that a close of
/// business found overdue.
pub(super) fn overdue_rejections(
    installments: &[Installment],
    records: &[CallRecord],
    finals: &HashMap<String, FinalSeen>,
) -> Vec<String> {
    let overdue: HashSet<&str> = installments
        .iter()
        .filter(|i| i.overdue_since.is_some())
        .map(|i| i.user_id.as_str())
        .collect();
    records
        .iter()
        .filter(|r| r.kind == Kind::Transaction)
        .filter_map(|r| {
            let f = finals.get(r.api_call_id.as_deref()?)?;
            let user = r.user_id.as_deref()?;
            (f.state == "REJECTED"
                && f.reason.as_deref() == Some("USER_OVERDUE")
                && !overdue.contains(user))
            .then(|| {
                format!(
                    "{} ({}) rejected USER_OVERDUE, yet user {user} has no installment with overdue_since",
                    r.api_call_id.as_deref().unwrap_or_default(),
                    r.external_id
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn d(cents: i64) -> Decimal {
        Decimal::new(cents, 2)
    }

    fn installment(
        id: &str,
        harga: i64,
        terbayar: i64,
        denda: i64,
        denda_terbayar: i64,
    ) -> Installment {
        Installment {
            billing_id: id.into(),
            user_id: "U1".into(),
            harga_cicilan: d(harga),
            terbayar: d(terbayar),
            dibatalkan: Decimal::ZERO,
            denda: d(denda),
            denda_terbayar: d(denda_terbayar),
            overdue_since: None,
        }
    }

    fn stored(result: &str, terbayarkan: i64) -> StoredBill {
        StoredBill {
            kode_bayar: "PAY_1".into(),
            api_call_id: "API_CALL_P1".into(),
            terbayarkan: d(terbayarkan),
            status: Some("APPROVED".into()),
            result: Some(result.into()),
        }
    }

    #[test]
    fn fees_stay_within_the_installment_and_what_is_paid_of_them_within_the_fees() {
        assert_eq!(fee_bounds(&installment("B1", 39_417, 0, 394, 0)), None);
        assert_eq!(
            fee_bounds(&installment("B1", 39_417, 39_417, 394, 394)),
            None
        );
        // Fees at the cap are fine, past it not.
        assert_eq!(fee_bounds(&installment("B1", 100, 0, 100, 50)), None);
        assert!(fee_bounds(&installment("B1", 100, 0, 101, 0)).is_some());
        // More fees paid than charged.
        assert!(fee_bounds(&installment("B1", 39_417, 0, 394, 395)).is_some());
        assert!(fee_bounds(&installment("B1", 39_417, 0, 0, -1)).is_some());
        // Paid and cancelled beyond the price.
        let mut i = installment("B1", 39_417, 39_000, 0, 0);
        i.dibatalkan = d(418);
        assert!(fee_bounds(&i).is_some());
        i.dibatalkan = d(417);
        assert_eq!(fee_bounds(&i), None);
    }

    #[test]
    fn a_bills_allocations_add_up_to_what_it_paid_fees_included() {
        let result = r#"{"kode_bayar":"PAY_1","terbayarkan":"500.00","status_bayar":"PARTIAL",
            "alokasi":[{"billing_id":"B1","jumlah":"390.23","denda":"3.94"},{"billing_id":"B2","jumlah":"105.83"}]}"#;
        let bill = stored(result, 50_000);
        let paid = match read_bill(&bill) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(bill_adds_up(&bill, &paid), None);
        assert_eq!(paid.alokasi[1].denda, None);
        // The bills row disagrees with its result.
        assert!(bill_adds_up(&stored(result, 49_999), &paid).is_some());
        // The allocation does not add up.
        let short = result.replace("105.83", "105.82");
        let bill = stored(&short, 50_000);
        let paid = read_bill(&bill).map_err(|e| e.to_string());
        assert!(paid.is_ok_and(|p| bill_adds_up(&bill, &p).is_some()));
        // No APPROVED outcome, or no bill in it.
        let mut pending = stored(result, 50_000);
        pending.status = Some("REJECTED".into());
        assert!(read_bill(&pending).is_err());
        assert!(read_bill(&stored(r#"{"kode_bayar":"PAY_1"}"#, 0)).is_err());
        // Money is a string with 2 decimals, never a float.
        assert!(read_bill(&stored(r#"{"terbayarkan":500.0,"alokasi":[]}"#, 50_000)).is_err());
    }

    #[test]
    fn an_installment_has_paid_exactly_what_the_payments_allocated_to_it() {
        let installments = [
            installment("B1", 39_417, 39_417, 394, 394),
            installment("B2", 39_417, 10_583, 0, 0),
            installment("B3", 39_416, 0, 0, 0),
        ];
        let paid = |j: i64, f: i64| Paid {
            jumlah: d(j),
            denda: d(f),
        };
        let mut allocated = HashMap::from([
            ("B1".to_owned(), paid(39_417, 394)),
            ("B2".to_owned(), paid(10_583, 0)),
        ]);
        assert!(installments_paid_as_allocated(&installments, allocated.clone()).is_empty());
        allocated.insert("B1".into(), paid(39_417, 393));
        allocated.insert("B9".into(), paid(1, 0));
        let v = installments_paid_as_allocated(&installments, allocated);
        assert_eq!(v.len(), 2, "{v:?}");
        assert!(v[0].contains("B1") && v[1].contains("B9"));
    }

    #[test]
    fn user_overdue_is_only_for_a_user_with_an_overdue_installment() {
        let mut overdue = installment("B1", 100, 0, 1, 0);
        overdue.user_id = "U1".into();
        overdue.overdue_since = NaiveDate::from_ymd_opt(2027, 1, 2);
        let mut current = installment("B2", 100, 0, 0, 0);
        current.user_id = "U2".into();
        let tx = |id: &str, user: &str| {
            let mut r = CallRecord::new(Kind::Transaction, format!("EXT-{id}"));
            r.api_call_id = Some(id.into());
            r.user_id = Some(user.into());
            r
        };
        let rejected = |reason: &str| FinalSeen {
            state: "REJECTED".into(),
            reason: Some(reason.into()),
            completed_at: None,
            seen_at: Utc::now(),
            resource_id: None,
        };
        let records = [tx("T1", "U1"), tx("T2", "U2"), tx("T3", "U2")];
        let finals = HashMap::from([
            ("T1".to_owned(), rejected("USER_OVERDUE")),
            ("T2".to_owned(), rejected("USER_OVERDUE")),
            ("T3".to_owned(), rejected("INSUFFICIENT_LIMIT")),
        ]);
        let v = overdue_rejections(&[overdue, current], &records, &finals);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains("T2") && v[0].contains("U2"));
    }
}
