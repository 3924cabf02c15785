//! One handler per command type. Each runs inside the batch's transaction, after the call's
//! external id has been recorded, and returns its verdict; the caller writes the outcome.
//! Payments and refunds act on existing contracts, which `ledger` locks and writes for them.

pub(crate) mod ledger;
pub(crate) mod payment;
pub(crate) mod refund;
pub(crate) mod transaction;
