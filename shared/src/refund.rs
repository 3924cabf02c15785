//! Refund allocation (SPEC §9): pure, no I/O. A refund cancels what the consumer owes, from
//! the last installment backwards; what is left once nothing is unpaid goes back to the
//! consumer.

use crate::contract::{Allocation, OpenInstallment, outstanding};
use crate::money::Money;
use rust_decimal::Decimal;

/// How a refund splits over a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundSplit {
    /// Cancelled per installment, last installment first, zero amounts left out.
    pub alokasi: Vec<Allocation>,
    /// Σ `alokasi`: what the consumer no longer owes, and what the tenor's limit gets back.
    pub mengurangi_tagihan: Money,
    /// The rest of the refund: money the consumer already paid, owed back to them.
    pub dikembalikan_ke_konsumen: Money,
    /// Σ unpaid parts after the refund.
    pub sisa_tagihan: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefundError {
    /// More than `jumlah_cicilan` minus the earlier refunds.
    #[error("the refund exceeds what is still refundable")]
    Exceeds,
}

/// Splits a refund of `jumlah` over `installments`, given `refundable` (the contract's
/// `jumlah_cicilan` minus its earlier approved refunds).
pub fn split_refund(
    installments: &[OpenInstallment],
    jumlah: Money,
    refundable: Money,
) -> Result<RefundSplit, RefundError> {
    if jumlah > refundable || jumlah.is_zero() {
        return Err(RefundError::Exceeds);
    }
    let mut ordered: Vec<&OpenInstallment> = installments.iter().collect();
    ordered.sort_by_key(|i| std::cmp::Reverse(i.cicilan_ke));
    let mut left = jumlah.value();
    let mut alokasi = Vec::new();
    for inst in ordered {
        if left.is_zero() {
            break;
        }
        let cancel = inst.unpaid().min(left);
        if cancel.is_zero() {
            continue;
        }
        left -= cancel;
        alokasi.push(Allocation {
            billing_id: inst.billing_id.clone(),
            jumlah: money(cancel)?,
            // Refunds never cancel fees (SPEC §12): what was charged stays owed.
            denda: None,
        });
    }
    let mengurangi = jumlah.value() - left;
    Ok(RefundSplit {
        alokasi,
        mengurangi_tagihan: money(mengurangi)?,
        dikembalikan_ke_konsumen: money(left)?,
        sisa_tagihan: money(outstanding(installments) - mengurangi)?,
    })
}

/// Every amount here lies between 0 and amounts that are already money.
fn money(d: Decimal) -> Result<Money, RefundError> {
    Money::new(d).map_err(|_| RefundError::Exceeds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::ContractStatus;
    use proptest::prelude::*;

    fn money(s: &str) -> Money {
        s.parse().expect("valid money")
    }

    fn installment(k: u32, harga: &str, paid: &str, cancelled: &str) -> OpenInstallment {
        OpenInstallment {
            billing_id: format!("b{k}"),
            cicilan_ke: k,
            harga_cicilan: money(harga),
            terbayar: money(paid),
            dibatalkan: money(cancelled),
            denda: Money::ZERO,
            denda_terbayar: Money::ZERO,
        }
    }

    fn cancelled(split: &RefundSplit) -> Vec<(&str, String)> {
        split
            .alokasi
            .iter()
            .map(|a| (a.billing_id.as_str(), a.jumlah.to_string()))
            .collect()
    }

    /// SPEC §9's example: the §4 contract after a payment of 394.17, refunded 500.00, then
    /// the remaining 682.50.
    #[test]
    fn spec_worked_example() {
        let paid_once = [
            installment(1, "394.17", "394.17", "0"),
            installment(2, "394.17", "0", "0"),
            installment(3, "394.16", "0", "0"),
        ];
        let first = split_refund(&paid_once, money("500.00"), money("1182.50")).expect("fits");
        assert_eq!(
            cancelled(&first),
            [("b3", "394.16".to_owned()), ("b2", "105.84".to_owned())]
        );
        assert_eq!(first.mengurangi_tagihan, money("500.00"));
        assert_eq!(first.dikembalikan_ke_konsumen, money("0.00"));
        assert_eq!(first.sisa_tagihan, money("288.33"));
        let status = |total_refund: &str, split: &RefundSplit| {
            ContractStatus::of(money("1182.50"), money(total_refund), split.sisa_tagihan)
        };
        assert_eq!(status("500.00", &first), ContractStatus::Active);

        let after = [
            installment(1, "394.17", "394.17", "0"),
            installment(2, "394.17", "0", "105.84"),
            installment(3, "394.16", "0", "394.16"),
        ];
        assert_eq!(
            split_refund(&after, money("682.51"), money("682.50")),
            Err(RefundError::Exceeds)
        );
        let rest = split_refund(&after, money("682.50"), money("682.50")).expect("fits");
        assert_eq!(cancelled(&rest), [("b2", "288.33".to_owned())]);
        assert_eq!(rest.mengurangi_tagihan, money("288.33"));
        assert_eq!(rest.dikembalikan_ke_konsumen, money("394.17"));
        assert_eq!(rest.sisa_tagihan, money("0.00"));
        assert_eq!(status("1182.50", &rest), ContractStatus::Cancelled);
    }

    #[test]
    fn a_settled_contract_refunds_everything_to_the_consumer() {
        let settled = [
            installment(1, "50.03", "50.03", "0"),
            installment(2, "50.02", "50.02", "0"),
        ];
        let split = split_refund(&settled, money("100.05"), money("100.05")).expect("fits");
        assert!(split.alokasi.is_empty());
        assert_eq!(split.mengurangi_tagihan, Money::ZERO);
        assert_eq!(split.dikembalikan_ke_konsumen, money("100.05"));
        assert_eq!(
            split_refund(&settled, money("0.01"), Money::ZERO),
            Err(RefundError::Exceeds)
        );
    }

    proptest! {
        #[test]
        fn a_refund_splits_exactly_and_cancels_from_the_last_installment(
            prices in proptest::collection::vec(1i64..100_000, 1..7),
            paid_frac in proptest::collection::vec(0i64..=100, 7),
            cancel_frac in proptest::collection::vec(0i64..=100, 7),
            refunded_before in 0i64..=100,
            refund_frac in 1i64..=120,
        ) {
            let insts: Vec<OpenInstallment> = prices.iter().enumerate().map(|(i, p)| {
                let paid = p * paid_frac[i] / 100;
                OpenInstallment {
                    billing_id: format!("b{i}"),
                    cicilan_ke: i as u32 + 1,
                    harga_cicilan: Money::from_cents(*p),
                    terbayar: Money::from_cents(paid),
                    dibatalkan: Money::from_cents((p - paid) * cancel_frac[i] / 100),
                    denda: Money::ZERO,
                    denda_terbayar: Money::ZERO,
                }
            }).collect();
            let total: i64 = prices.iter().sum();
            let refundable = total - total * refunded_before / 100;
            let jumlah = (refundable * refund_frac / 100).max(1);
            match split_refund(&insts, Money::from_cents(jumlah), Money::from_cents(refundable)) {
                Ok(split) => {
                    prop_assert!(jumlah <= refundable);
                    let sum: Decimal = split.alokasi.iter().map(|a| a.jumlah.value()).sum();
                    prop_assert_eq!(sum, split.mengurangi_tagihan.value());
                    prop_assert_eq!(
                        split.mengurangi_tagihan.value() + split.dikembalikan_ke_konsumen.value(),
                        Money::from_cents(jumlah).value()
                    );
                    // A refund that covers everything unpaid leaves nothing unpaid.
                    if Money::from_cents(jumlah).value() >= outstanding(&insts) {
                        prop_assert!(split.sisa_tagihan.is_zero());
                    }
                    let mut previous = u32::MAX;
                    for a in &split.alokasi {
                        prop_assert!(!a.jumlah.is_zero());
                        let inst = insts.iter().find(|i| i.billing_id == a.billing_id).expect("known");
                        prop_assert!(inst.cicilan_ke < previous, "last installment first");
                        previous = inst.cicilan_ke;
                        prop_assert!(a.jumlah.value() <= inst.unpaid(), "no unpaid part below 0");
                    }
                    // Money goes back to the consumer only once nothing is left unpaid.
                    if !split.dikembalikan_ke_konsumen.is_zero() {
                        prop_assert!(split.sisa_tagihan.is_zero());
                    }
                    prop_assert_eq!(
                        split.sisa_tagihan.value(),
                        outstanding(&insts) - split.mengurangi_tagihan.value()
                    );
                }
                Err(RefundError::Exceeds) => prop_assert!(jumlah > refundable),
            }
        }
    }
}
