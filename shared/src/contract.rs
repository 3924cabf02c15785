//! Contract math (SPEC §4) and payment allocation: pure functions, no I/O.

use crate::money::{Money, Rate, money_max, round2};
use chrono::{DateTime, Months, NaiveDate, Utc};
use chrono_tz::Asia::Jakarta;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A tenor that exists is valid: 1, 2, 3 or 6 months.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tenor {
    One,
    Two,
    Three,
    Six,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenorError {
    /// An integer, but not 1, 2, 3 or 6.
    #[error("tenor must be 1, 2, 3 or 6")]
    NotAllowed,
    /// Not a JSON integer written without fraction or exponent.
    #[error("tenor must be an integer")]
    NotAnInteger,
}

impl Tenor {
    pub const ALL: [Tenor; 4] = [Tenor::One, Tenor::Two, Tenor::Three, Tenor::Six];

    pub fn months(self) -> u32 {
        match self {
            Tenor::One => 1,
            Tenor::Two => 2,
            Tenor::Three => 3,
            Tenor::Six => 6,
        }
    }

    pub fn from_months(n: u32) -> Option<Tenor> {
        match n {
            1 => Some(Tenor::One),
            2 => Some(Tenor::Two),
            3 => Some(Tenor::Three),
            6 => Some(Tenor::Six),
            _ => None,
        }
    }

    /// Parses the raw JSON text of the `tenor` field.
    pub fn parse_json(raw: &str) -> Result<Tenor, TenorError> {
        let digits = raw.strip_prefix('-').unwrap_or(raw);
        let is_integer = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !is_integer {
            return Err(TenorError::NotAnInteger);
        }
        if raw.starts_with('-') {
            return Err(TenorError::NotAllowed);
        }
        digits
            .parse::<u32>()
            .ok()
            .and_then(Tenor::from_months)
            .ok_or(TenorError::NotAllowed)
    }

    /// The key of the limits map: "1", "2", "3", "6".
    pub fn key(self) -> &'static str {
        match self {
            Tenor::One => "1",
            Tenor::Two => "2",
            Tenor::Three => "3",
            Tenor::Six => "6",
        }
    }

    /// The `user_limit_balances` columns for this tenor: (granted, available).
    /// Static names, so building SQL from them is safe.
    pub fn limit_columns(self) -> (&'static str, &'static str) {
        match self {
            Tenor::One => ("limit_one_month", "available_one_month"),
            Tenor::Two => ("limit_two_month", "available_two_month"),
            Tenor::Three => ("limit_three_month", "available_three_month"),
            Tenor::Six => ("limit_sixth", "available_sixth"),
        }
    }
}

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Tenor {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Integer)
            .enum_values(Some([1, 2, 3, 6]))
            .description(Some(
                "Months: 1, 2, 3 or 6. In a request, a JSON integer written without fraction or \
                 exponent; another integer is `TENOR_NOT_ALLOWED`, anything else `INVALID_VALUE`.",
            ))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Tenor {}

impl Serialize for Tenor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u32(self.months())
    }
}

impl<'de> Deserialize<'de> for Tenor {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u32::deserialize(d)?;
        Tenor::from_months(n).ok_or_else(|| serde::de::Error::custom("tenor must be 1, 2, 3 or 6"))
    }
}

/// The terms a merchant submits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractTerms {
    pub otr: Money,
    pub admin_fee: Money,
    pub harga_aset: Money,
    pub bunga_persen: Rate,
    pub tenor: Tenor,
}

/// Why terms cannot become a contract; each names the field the client should fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    #[error("otr plus admin_fee, or the interest on it, exceeds the largest amount")]
    AmountOutOfRange,
    #[error("every installment must be at least 0.01")]
    InstallmentTooSmall,
}

impl TermsError {
    /// The body field SPEC §3's message names for this error.
    pub fn field(self) -> &'static str {
        match self {
            TermsError::AmountOutOfRange => "admin_fee",
            TermsError::InstallmentTooSmall => "tenor",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installment {
    pub cicilan_ke: u32,
    pub harga_cicilan: Money,
    pub tanggal_tagihan: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub pokok: Money,
    pub jumlah_bunga: Money,
    pub jumlah_cicilan: Money,
    pub cicilan_bulanan: Money,
    pub installments: Vec<Installment>,
}

/// What a contract's terms come to (SPEC §4), before any date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amounts {
    /// `otr + admin_fee`.
    pub pokok: Money,
    pub jumlah_bunga: Money,
    /// `pokok + jumlah_bunga`: what the limit is debited.
    pub jumlah_cicilan: Money,
    pub cicilan_bulanan: Money,
    /// Each installment in order; the last absorbs the rounding.
    pub installments: Vec<Money>,
}

/// The amounts of SPEC §4 (no dates): validates that every amount is in range and every
/// installment is at least 0.01.
pub fn amounts(terms: &ContractTerms) -> Result<Amounts, TermsError> {
    let n = Decimal::from(terms.tenor.months());
    let pokok = terms
        .otr
        .checked_add(terms.admin_fee)
        .ok_or(TermsError::AmountOutOfRange)?;
    let interest = pokok
        .value()
        .checked_mul(terms.bunga_persen.value())
        .and_then(|v| v.checked_div(Decimal::ONE_HUNDRED))
        .and_then(|v| v.checked_mul(n))
        .ok_or(TermsError::AmountOutOfRange)?;
    let jumlah_bunga = Money::new(round2(interest)).map_err(|_| TermsError::AmountOutOfRange)?;
    let jumlah_cicilan = pokok
        .checked_add(jumlah_bunga)
        .ok_or(TermsError::AmountOutOfRange)?;
    let bulanan = round2(jumlah_cicilan.value() / n);
    let cicilan_bulanan = Money::new(bulanan).map_err(|_| TermsError::AmountOutOfRange)?;
    let last = jumlah_cicilan.value() - bulanan * (n - Decimal::ONE);
    let min = Decimal::new(1, 2);
    if bulanan < min || last < min || last > money_max() {
        return Err(TermsError::InstallmentTooSmall);
    }
    let last = Money::new(last).map_err(|_| TermsError::InstallmentTooSmall)?;
    let count = terms.tenor.months() as usize;
    let mut each = vec![cicilan_bulanan; count - 1];
    each.push(last);
    Ok(Amounts {
        pokok,
        jumlah_bunga,
        jumlah_cicilan,
        cicilan_bulanan,
        installments: each,
    })
}

/// The whole schedule for a contract accepted at `contract_instant`.
pub fn schedule(
    terms: &ContractTerms,
    contract_instant: DateTime<Utc>,
) -> Result<Schedule, TermsError> {
    let Amounts {
        pokok,
        jumlah_bunga,
        jumlah_cicilan,
        cicilan_bulanan,
        installments: amounts,
    } = amounts(terms)?;
    let anchor = contract_instant.with_timezone(&Jakarta).date_naive();
    let installments = amounts
        .into_iter()
        .enumerate()
        .map(|(i, harga_cicilan)| {
            let k = i as u32 + 1;
            Installment {
                cicilan_ke: k,
                harga_cicilan,
                tanggal_tagihan: due_date(anchor, k),
            }
        })
        .collect();
    Ok(Schedule {
        pokok,
        jumlah_bunga,
        jumlah_cicilan,
        cicilan_bulanan,
        installments,
    })
}

/// The contract date plus `k` months, clamped to the month's last day.
pub fn due_date(anchor: NaiveDate, k: u32) -> NaiveDate {
    // chrono clamps to the last day of the target month; the range of NaiveDate is far
    // beyond any anchor plus six months, so the fallback is unreachable in practice.
    anchor.checked_add_months(Months::new(k)).unwrap_or(anchor)
}

/// The status of one installment: the first that holds of cancelled in full, nothing
/// outstanding, something paid, nothing paid (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstallmentStatus {
    Unpaid,
    Partial,
    Paid,
    Cancelled,
}

impl InstallmentStatus {
    pub fn of(harga: Money, terbayar: Money, dibatalkan: Money) -> InstallmentStatus {
        if dibatalkan >= harga {
            InstallmentStatus::Cancelled
        } else if terbayar.value() + dibatalkan.value() >= harga.value() {
            InstallmentStatus::Paid
        } else if terbayar.is_zero() {
            InstallmentStatus::Unpaid
        } else {
            InstallmentStatus::Partial
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            InstallmentStatus::Unpaid => "UNPAID",
            InstallmentStatus::Partial => "PARTIAL",
            InstallmentStatus::Paid => "PAID",
            InstallmentStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<InstallmentStatus> {
        match s {
            "UNPAID" => Some(InstallmentStatus::Unpaid),
            "PARTIAL" => Some(InstallmentStatus::Partial),
            "PAID" => Some(InstallmentStatus::Paid),
            "CANCELLED" => Some(InstallmentStatus::Cancelled),
            _ => None,
        }
    }
}

/// A contract's status (SPEC §9): `CANCELLED` once refunds reached `jumlah_cicilan`, else
/// `ACTIVE` while anything is outstanding, else `PAID_OFF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ContractStatus {
    Active,
    PaidOff,
    Cancelled,
}

impl ContractStatus {
    /// The status of a contract of `jumlah_cicilan` with `total_refund` refunded and
    /// `outstanding` (Σ unpaid parts) left.
    pub fn of(jumlah_cicilan: Money, total_refund: Money, outstanding: Money) -> ContractStatus {
        if total_refund >= jumlah_cicilan {
            ContractStatus::Cancelled
        } else if outstanding.is_zero() {
            ContractStatus::PaidOff
        } else {
            ContractStatus::Active
        }
    }
}

/// An installment as the allocators see it: how much it costs, how much is paid and how much
/// refunds cancelled, and its late fees charged and paid (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenInstallment {
    pub billing_id: String,
    pub cicilan_ke: u32,
    pub harga_cicilan: Money,
    pub terbayar: Money,
    pub dibatalkan: Money,
    pub denda: Money,
    pub denda_terbayar: Money,
}

impl OpenInstallment {
    /// What is still to pay: `harga_cicilan - terbayar - dibatalkan` (never below 0).
    pub fn unpaid(&self) -> Decimal {
        (self.harga_cicilan.value() - self.terbayar.value() - self.dibatalkan.value())
            .max(Decimal::ZERO)
    }

    /// Its late fees still to pay: `denda - denda_terbayar` (never below 0).
    pub fn unpaid_fee(&self) -> Decimal {
        (self.denda.value() - self.denda_terbayar.value()).max(Decimal::ZERO)
    }
}

/// Σ unpaid parts of `installments` (what refunds may cancel; fees stay owed).
pub fn outstanding(installments: &[OpenInstallment]) -> Decimal {
    installments.iter().map(OpenInstallment::unpaid).sum()
}

/// A payment's outcome: `SUCCESS` when nothing is outstanding after it, `PARTIAL` otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusBayar {
    Success,
    Partial,
}

impl StatusBayar {
    /// The status of a payment that leaves `outstanding` to pay.
    pub fn leaving(outstanding: Money) -> StatusBayar {
        if outstanding.is_zero() {
            StatusBayar::Success
        } else {
            StatusBayar::Partial
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StatusBayar::Success => "SUCCESS",
            StatusBayar::Partial => "PARTIAL",
        }
    }

    pub fn parse(s: &str) -> Option<StatusBayar> {
        match s {
            "SUCCESS" => Some(StatusBayar::Success),
            "PARTIAL" => Some(StatusBayar::Partial),
            _ => None,
        }
    }
}

/// What a payment paid (or a refund cancelled) on one installment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Allocation {
    pub billing_id: String,
    /// Paid to (or cancelled of) the installment itself.
    pub jumlah: Money,
    /// Paid to its late fees (payments only; SPEC §12).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denda: Option<Money>,
}

impl Allocation {
    /// What went to the installment and its fees together.
    pub fn total(&self) -> Decimal {
        self.jumlah.value() + self.denda.map_or(Decimal::ZERO, Money::value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("the payment exceeds what is outstanding")]
    Overpayment,
}

/// Σ unpaid parts and unpaid fees of `installments`: what a payment may pay (SPEC §12).
pub fn outstanding_with_fees(installments: &[OpenInstallment]) -> Decimal {
    installments
        .iter()
        .map(|i| i.unpaid() + i.unpaid_fee())
        .sum()
}

/// Pays `jumlah` in `cicilan_ke` order, within an installment to its unpaid fee first, then to
/// its unpaid part. Returns the allocation per installment and the outstanding amount (fees
/// included) before the payment.
pub fn allocate(
    installments: &[OpenInstallment],
    jumlah: Money,
) -> Result<(Vec<Allocation>, Money), AllocationError> {
    let mut ordered: Vec<&OpenInstallment> = installments.iter().collect();
    ordered.sort_by_key(|i| i.cicilan_ke);
    let outstanding = outstanding_with_fees(installments);
    if jumlah.value() > outstanding || jumlah.is_zero() {
        return Err(AllocationError::Overpayment);
    }
    let mut left = jumlah.value();
    let mut out = Vec::new();
    for inst in ordered {
        if left.is_zero() {
            break;
        }
        let fee = inst.unpaid_fee().min(left);
        left -= fee;
        let pay = inst.unpaid().min(left);
        left -= pay;
        if fee.is_zero() && pay.is_zero() {
            continue;
        }
        out.push(Allocation {
            billing_id: inst.billing_id.clone(),
            jumlah: Money::new(pay).map_err(|_| AllocationError::Overpayment)?,
            denda: Some(Money::new(fee).map_err(|_| AllocationError::Overpayment)?),
        });
    }
    let outstanding = Money::new(outstanding).map_err(|_| AllocationError::Overpayment)?;
    Ok((out, outstanding))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn money(s: &str) -> Money {
        s.parse().expect("valid money")
    }

    fn terms(otr: &str, fee: &str, aset: &str, rate: &str, tenor: Tenor) -> ContractTerms {
        ContractTerms {
            otr: money(otr),
            admin_fee: money(fee),
            harga_aset: money(aset),
            bunga_persen: Rate::parse_json(rate).expect("valid rate"),
            tenor,
        }
    }

    fn strings(v: &[Money]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn spec_worked_example_one() {
        let a = amounts(&terms("1000.00", "100.00", "900.00", "2.5", Tenor::Three)).expect("valid");
        assert_eq!(a.pokok.to_string(), "1100.00");
        assert_eq!(a.jumlah_bunga.to_string(), "82.50");
        assert_eq!(a.jumlah_cicilan.to_string(), "1182.50");
        assert_eq!(a.cicilan_bulanan.to_string(), "394.17");
        assert_eq!(strings(&a.installments), ["394.17", "394.17", "394.16"]);
    }

    #[test]
    fn spec_worked_example_two() {
        let a = amounts(&terms("100.05", "0", "100", "0", Tenor::Two)).expect("valid");
        assert_eq!(strings(&a.installments), ["50.03", "50.02"]);
    }

    #[test]
    fn spec_worked_example_three() {
        let a = amounts(&terms("1000.50", "0", "1000", "2.5", Tenor::Two)).expect("valid");
        assert_eq!(a.jumlah_bunga.to_string(), "50.03");
        assert_eq!(strings(&a.installments), ["525.27", "525.26"]);
    }

    #[test]
    fn tiny_contracts_are_rejected() {
        assert_eq!(
            amounts(&terms("0.05", "0", "0.05", "0", Tenor::Six)),
            Err(TermsError::InstallmentTooSmall)
        );
        assert!(amounts(&terms("0.06", "0", "0.06", "0", Tenor::Six)).is_ok());
    }

    #[test]
    fn huge_contracts_are_out_of_range() {
        assert_eq!(
            amounts(&terms("999999999999999999.99", "1", "1", "0", Tenor::One)),
            Err(TermsError::AmountOutOfRange)
        );
        assert_eq!(
            amounts(&terms("999999999999999999.99", "0", "1", "100", Tenor::Six)),
            Err(TermsError::AmountOutOfRange)
        );
    }

    #[test]
    fn tenor_parsing() {
        assert_eq!(Tenor::parse_json("3"), Ok(Tenor::Three));
        assert_eq!(Tenor::parse_json("6"), Ok(Tenor::Six));
        for not_allowed in ["0", "4", "12", "-1", "99999999999999999999999"] {
            assert_eq!(
                Tenor::parse_json(not_allowed),
                Err(TenorError::NotAllowed),
                "{not_allowed}"
            );
        }
        for bad in ["3.0", "3e0", "\"3\"", "03", "true", "", "-", "[3]", "3.5"] {
            assert_eq!(
                Tenor::parse_json(bad),
                Err(TenorError::NotAnInteger),
                "{bad}"
            );
        }
    }

    #[test]
    fn due_dates_clamp_to_month_end_in_jakarta() {
        // 2026-01-31 10:00 Jakarta
        let instant = Utc
            .with_ymd_and_hms(2026, 1, 31, 3, 0, 0)
            .single()
            .expect("valid");
        let s = schedule(&terms("600", "0", "600", "0", Tenor::Six), instant).expect("valid");
        let dates: Vec<String> = s
            .installments
            .iter()
            .map(|i| i.tanggal_tagihan.to_string())
            .collect();
        assert_eq!(
            dates,
            [
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31",
                "2026-06-30",
                "2026-07-31"
            ]
        );
        // 2028 is a leap year
        let leap = NaiveDate::from_ymd_opt(2028, 1, 31).expect("valid");
        assert_eq!(due_date(leap, 1).to_string(), "2028-02-29");
    }

    #[test]
    fn contract_date_is_the_jakarta_calendar_date() {
        // 2026-03-31 18:30 UTC is already 1 April in Jakarta (UTC+7)
        let instant = Utc
            .with_ymd_and_hms(2026, 3, 31, 18, 30, 0)
            .single()
            .expect("valid");
        let s = schedule(&terms("100", "0", "100", "0", Tenor::One), instant).expect("valid");
        assert_eq!(s.installments[0].tanggal_tagihan.to_string(), "2026-05-01");
    }

    #[test]
    fn allocation_pays_in_order() {
        let open = |id: &str, k, harga: &str, paid: &str| OpenInstallment {
            billing_id: id.into(),
            cicilan_ke: k,
            harga_cicilan: money(harga),
            terbayar: money(paid),
            dibatalkan: Money::ZERO,
            denda: Money::ZERO,
            denda_terbayar: Money::ZERO,
        };
        let insts = vec![
            open("c", 3, "394.16", "0"),
            open("a", 1, "394.17", "0"),
            open("b", 2, "394.17", "0"),
        ];
        let (alloc, before) = allocate(&insts, money("500.00")).expect("fits");
        assert_eq!(before.to_string(), "1182.50");
        assert_eq!(
            alloc,
            vec![
                Allocation {
                    billing_id: "a".into(),
                    jumlah: money("394.17"),
                    denda: Some(Money::ZERO)
                },
                Allocation {
                    billing_id: "b".into(),
                    jumlah: money("105.83"),
                    denda: Some(Money::ZERO)
                },
            ]
        );
        assert_eq!(
            allocate(&insts, money("1182.51")),
            Err(AllocationError::Overpayment)
        );
        let settled = vec![open("a", 1, "10", "10")];
        assert_eq!(
            allocate(&settled, money("0.01")),
            Err(AllocationError::Overpayment)
        );
    }

    #[test]
    fn a_payment_pays_each_installments_fee_before_its_unpaid_part() {
        let open = |id: &str, k, denda: &str, denda_paid: &str| OpenInstallment {
            billing_id: id.into(),
            cicilan_ke: k,
            harga_cicilan: money("100.00"),
            terbayar: Money::ZERO,
            dibatalkan: Money::ZERO,
            denda: money(denda),
            denda_terbayar: money(denda_paid),
        };
        let insts = vec![open("a", 1, "3.00", "1.00"), open("b", 2, "1.00", "0")];
        let (alloc, before) = allocate(&insts, money("103.50")).expect("fits");
        assert_eq!(before, money("203.00"));
        assert_eq!(
            alloc,
            vec![
                Allocation {
                    billing_id: "a".into(),
                    jumlah: money("100.00"),
                    denda: Some(money("2.00"))
                },
                Allocation {
                    billing_id: "b".into(),
                    jumlah: money("0.50"),
                    denda: Some(money("1.00"))
                },
            ]
        );
        assert_eq!(
            allocate(&insts, money("203.01")),
            Err(AllocationError::Overpayment)
        );
        // Only fees left: a payment of them is accepted and pays no installment part.
        let fees_only = vec![OpenInstallment {
            terbayar: money("100.00"),
            ..open("a", 1, "3.00", "1.00")
        }];
        let (alloc, _) = allocate(&fees_only, money("2.00")).expect("fits");
        assert_eq!(alloc[0].jumlah, Money::ZERO);
        assert_eq!(alloc[0].denda, Some(money("2.00")));
    }

    #[test]
    fn installment_status_is_the_first_that_holds() {
        let of = |h: &str, p: &str, c: &str| InstallmentStatus::of(money(h), money(p), money(c));
        assert_eq!(of("394.16", "0", "394.16"), InstallmentStatus::Cancelled);
        assert_eq!(of("394.17", "394.17", "0"), InstallmentStatus::Paid);
        assert_eq!(of("394.17", "105.84", "288.33"), InstallmentStatus::Paid);
        assert_eq!(of("394.17", "0", "288.33"), InstallmentStatus::Unpaid);
        assert_eq!(of("394.17", "0.01", "105.84"), InstallmentStatus::Partial);
        assert_eq!(of("394.17", "0", "0"), InstallmentStatus::Unpaid);
    }

    #[test]
    fn contract_status_cancelled_then_paid_off_then_active() {
        let of = |t: &str, r: &str, o: &str| ContractStatus::of(money(t), money(r), money(o));
        assert_eq!(of("1182.50", "1182.50", "0"), ContractStatus::Cancelled);
        assert_eq!(of("1182.50", "500.00", "0"), ContractStatus::PaidOff);
        assert_eq!(of("1182.50", "500.00", "288.33"), ContractStatus::Active);
        assert_eq!(of("1182.50", "0", "1182.50"), ContractStatus::Active);
    }

    #[test]
    fn payments_skip_what_refunds_cancelled() {
        let installment = |id: &str, k, paid: &str, cancelled: &str| OpenInstallment {
            billing_id: id.into(),
            cicilan_ke: k,
            harga_cicilan: money("394.17"),
            terbayar: money(paid),
            dibatalkan: money(cancelled),
            denda: Money::ZERO,
            denda_terbayar: Money::ZERO,
        };
        let insts = vec![
            installment("a", 1, "394.17", "0"),
            installment("b", 2, "0", "105.84"),
            installment("c", 3, "0", "394.17"),
        ];
        let (alloc, before) = allocate(&insts, money("288.33")).expect("fits");
        assert_eq!(before, money("288.33"));
        assert_eq!(
            alloc,
            vec![Allocation {
                billing_id: "b".into(),
                jumlah: money("288.33"),
                denda: Some(Money::ZERO)
            }]
        );
        assert_eq!(
            allocate(&insts, money("288.34")),
            Err(AllocationError::Overpayment)
        );
    }

    proptest! {
        #[test]
        fn installments_sum_exactly_and_are_even(
            otr in 1i64..=10_000_000_000, fee in 0i64..=1_000_000, rate_bp in 0i64..=1_000_000,
            tenor_idx in 0usize..4
        ) {
            let tenor = Tenor::ALL[tenor_idx];
            let t = ContractTerms {
                otr: Money::from_cents(otr),
                admin_fee: Money::from_cents(fee),
                harga_aset: Money::from_cents(otr),
                bunga_persen: Rate::new(Decimal::new(rate_bp, 4)).expect("in range"),
                tenor,
            };
            match amounts(&t) {
                Ok(Amounts {
                    pokok,
                    jumlah_bunga: bunga,
                    jumlah_cicilan: jumlah,
                    cicilan_bulanan: bulanan,
                    installments: each,
                }) => {
                    prop_assert_eq!(pokok.value(), t.otr.value() + t.admin_fee.value());
                    prop_assert_eq!(jumlah.value(), pokok.value() + bunga.value());
                    let sum: Decimal = each.iter().map(|m| m.value()).sum();
                    prop_assert_eq!(sum, jumlah.value());
                    prop_assert_eq!(each.len() as u32, tenor.months());
                    let spread = Decimal::new(1, 2) * Decimal::from(tenor.months() - 1);
                    for m in &each {
                        prop_assert!(m.value() >= Decimal::new(1, 2));
                        prop_assert!((m.value() - bulanan.value()).abs() <= spread);
                    }
                }
                Err(TermsError::InstallmentTooSmall) => {
                    prop_assert!(otr + fee < 100 * i64::from(tenor.months()));
                }
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        #[test]
        fn allocation_pays_fees_first_and_never_exceeds_what_is_owed(
            prices in proptest::collection::vec(1i64..100_000, 1..7),
            paid_frac in proptest::collection::vec(0i64..=100, 7),
            fee_frac in proptest::collection::vec(0i64..=100, 7),
            fee_paid_frac in proptest::collection::vec(0i64..=100, 7),
            pay in 1i64..1_000_000
        ) {
            let insts: Vec<OpenInstallment> = prices.iter().enumerate().map(|(i, p)| {
                let denda = p * fee_frac[i] / 100;
                OpenInstallment {
                    billing_id: format!("b{i}"),
                    cicilan_ke: i as u32 + 1,
                    harga_cicilan: Money::from_cents(*p),
                    terbayar: Money::from_cents(p * paid_frac[i] / 100),
                    dibatalkan: Money::ZERO,
                    denda: Money::from_cents(denda),
                    denda_terbayar: Money::from_cents(denda * fee_paid_frac[i] / 100),
                }
            }).collect();
            let outstanding: Decimal = insts.iter().map(|i| i.unpaid() + i.unpaid_fee()).sum();
            match allocate(&insts, Money::from_cents(pay)) {
                Ok((alloc, before)) => {
                    prop_assert_eq!(before.value(), outstanding);
                    let total: Decimal = alloc.iter().map(Allocation::total).sum();
                    prop_assert_eq!(total, Money::from_cents(pay).value());
                    for a in &alloc {
                        let inst = insts.iter().find(|i| i.billing_id == a.billing_id).expect("known");
                        let fee = a.denda.map_or(Decimal::ZERO, Money::value);
                        prop_assert!(a.jumlah.value() <= inst.unpaid());
                        prop_assert!(fee <= inst.unpaid_fee());
                        prop_assert!(a.jumlah.is_zero() || fee == inst.unpaid_fee(), "fee first");
                    }
                }
                Err(AllocationError::Overpayment) => prop_assert!(Decimal::new(pay, 2) > outstanding),
            }
        }
    }
}
