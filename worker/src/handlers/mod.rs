//! One handler per command type. Each runs inside the batch's transaction, after the call's
//! external id has been recorded, and returns its verdict; the caller writes the outcome.

pub(crate) mod payment;
pub(crate) mod transaction;
