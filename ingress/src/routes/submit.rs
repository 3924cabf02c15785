//! `POST /transaction`, `POST /payment` and `POST /refund`: validate, claim, publish with
//! confirms, answer 202 (or the outcome, when `Prefer: wait` holds long enough).

use crate::body::{self, Body, FromBody};
use crate::caller::Caller;
use crate::claims::{self, Claimed};
use crate::deadline::Deadline;
use crate::error::ApiError;
use crate::pipeline::Reply;
use crate::state::AppState;
use crate::waiters::PreferWait;
use axum::extract::State;
use axum::http::{StatusCode, header};
use serde::Serialize;
use shared::cache::{Seen, StatusRecord};
use shared::contract::{ContractTerms, Tenor, amounts};
use shared::envelope::MessageAction;
use shared::json::JsonObject;
use shared::messages::{
    COMMAND_SCHEMA_VERSION, Command, CommandPayload, PaymentPayload, RefundPayload,
    TransactionPayload,
};
use shared::metrics::Stages;
use shared::money::{Money, Rate};
use shared::openapi::{MoneyInput, RateInput};
use shared::status::{CallState, CallStatus};
use utoipa::ToSchema;

/// `POST /transaction`: all fields mandatory, no others. Validation: `otr > 0`,
/// `harga_aset > 0`, `harga_aset <= otr`, `admin_fee >= 0`, `0 <= bunga_persen <= 100`, every
/// installment at least 0.01. The user is looked up asynchronously (`USER_NOT_FOUND`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TransactionRequest {
    #[schema(
        min_length = 1,
        max_length = 128,
        example = "USR_5f0c6a1e9b8d4c2fa1b3c5d7e9f0a2b4"
    )]
    user_id: String,
    #[schema(value_type = MoneyInput)]
    otr: Money,
    #[schema(value_type = MoneyInput)]
    admin_fee: Money,
    #[schema(value_type = MoneyInput)]
    harga_aset: Money,
    #[schema(value_type = RateInput)]
    bunga_persen: Rate,
    tenor: Tenor,
    #[schema(min_length = 1, max_length = 200, example = "Kulkas 2 Pintu")]
    nama_aset: String,
}

impl FromBody for TransactionRequest {
    const FIELDS: &'static [&'static str] = &[
        "user_id",
        "otr",
        "admin_fee",
        "harga_aset",
        "bunga_persen",
        "tenor",
        "nama_aset",
    ];

    fn from_body(obj: &JsonObject<'_>) -> Result<TransactionRequest, ApiError> {
        let user_id = body::text(obj, "user_id", 1, 128)?;
        let otr = body::positive_money(obj, "otr")?;
        let admin_fee = body::money(obj, "admin_fee")?;
        let harga_aset = body::positive_money(obj, "harga_aset")?;
        if harga_aset > otr {
            return Err(ApiError::invalid_value("harga_aset", "must not exceed otr"));
        }
        let request = TransactionRequest {
            user_id,
            otr,
            admin_fee,
            harga_aset,
            bunga_persen: body::rate(obj, "bunga_persen")?,
            tenor: body::tenor(obj, "tenor")?,
            nama_aset: body::text(obj, "nama_aset", 1, 200)?,
        };
        amounts(&request.terms()).map_err(|e| ApiError::invalid_value(e.field(), e))?;
        Ok(request)
    }
}

impl TransactionRequest {
    fn terms(&self) -> ContractTerms {
        ContractTerms {
            otr: self.otr,
            admin_fee: self.admin_fee,
            harga_aset: self.harga_aset,
            bunga_persen: self.bunga_persen,
            tenor: self.tenor,
        }
    }
}

impl From<TransactionRequest> for TransactionPayload {
    fn from(r: TransactionRequest) -> TransactionPayload {
        TransactionPayload {
            terms: r.terms(),
            user_id: r.user_id,
            nama_aset: r.nama_aset,
        }
    }
}

/// `POST /payment`: both fields mandatory. Pays the unpaid installments in `cicilan_ke`
/// order; more than is outstanding is rejected asynchronously (`OVERPAYMENT`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PaymentRequest {
    #[schema(
        min_length = 1,
        max_length = 128,
        example = "KTR_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    )]
    nomor_kontrak: String,
    /// Greater than 0.
    #[schema(value_type = MoneyInput)]
    jumlah: Money,
}

impl FromBody for PaymentRequest {
    const FIELDS: &'static [&'static str] = &["nomor_kontrak", "jumlah"];

    fn from_body(obj: &JsonObject<'_>) -> Result<PaymentRequest, ApiError> {
        Ok(PaymentRequest {
            nomor_kontrak: body::text(obj, "nomor_kontrak", 1, 128)?,
            jumlah: body::positive_money(obj, "jumlah")?,
        })
    }
}

/// `POST /refund`: all fields mandatory, no others. Cancels what the consumer owes on the
/// contract, from the last installment backwards; more than is still refundable is rejected
/// asynchronously (`REFUND_EXCEEDS`), another merchant's contract like an unknown one
/// (`CONTRACT_NOT_FOUND`).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefundRequest {
    #[schema(
        min_length = 1,
        max_length = 128,
        example = "KTR_0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    )]
    nomor_kontrak: String,
    /// Greater than 0, in what the consumer owes (interest included).
    #[schema(value_type = MoneyInput)]
    jumlah: Money,
    #[schema(min_length = 1, max_length = 200, example = "barang dikembalikan")]
    alasan: String,
}

impl FromBody for RefundRequest {
    const FIELDS: &'static [&'static str] = &["nomor_kontrak", "jumlah", "alasan"];

    fn from_body(obj: &JsonObject<'_>) -> Result<RefundRequest, ApiError> {
        Ok(RefundRequest {
            nomor_kontrak: body::text(obj, "nomor_kontrak", 1, 128)?,
            jumlah: body::positive_money(obj, "jumlah")?,
            alasan: body::text(obj, "alasan", 1, 200)?,
        })
    }
}

/// Submit a transaction.
///
/// Merchants and admins. Buy now, pay later: a contract of `tenor` months if the user's
/// available limit for that tenor covers `jumlah_cicilan`. Asynchronous: `202`, then the
/// outcome at `GET /status/{api_call_id}`, or at once with `Prefer: wait`.
#[utoipa::path(
    post,
    path = "/transaction",
    operation_id = "submitTransaction",
    tag = "transactions",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdRequired, crate::openapi::PreferWait),
    request_body(content = TransactionRequest, content_type = "application/json"),
    responses(
        crate::openapi::AcceptedResponse,
        (status = 201, description = "Approved within `Prefer: wait`: the status, the contract \
            as `result`.", body = crate::openapi::ApprovedEnvelope,
            links(
                ("getStatus" = (operation_id = "getStatus",
                    parameters(("api_call_id" = "$response.body#/api_call_id")))),
                ("getContract" = (operation_id = "getContract",
                    parameters(("nomor_kontrak" = "$response.body#/message_data/result/nomor_kontrak")))),
            )),
        (status = 400, description = "Invalid (nothing claimed), or rejected within `Prefer: \
            wait` as `INSUFFICIENT_LIMIT`, `USER_NOT_ACTIVE` or `USER_OVERDUE`.", body = crate::openapi::TransactionBadRequest),
        (status = 404, description = "Rejected within `Prefer: wait`: `USER_NOT_FOUND`.",
            body = crate::openapi::UserNotFoundEnvelope),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID`, or `DUPLICATE_EXTERNAL_ID` \
            within `Prefer: wait`.", body = crate::openapi::SubmitConflict),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn transaction(
    State(state): State<AppState>,
    ctx: Caller,
    PreferWait(wait): PreferWait,
    deadline: Deadline,
    Body(request): Body<TransactionRequest>,
) -> Result<Reply<Submitted>, ApiError> {
    let payload = CommandPayload::Transaction(request.into());
    submit(&state, &ctx, wait, deadline, payload).await
}

/// Submit a payment.
///
/// Admin only. Pays a contract's unpaid installments in `cicilan_ke` order, partially if need
/// be; the amount paid is restored to the contract's tenor. Asynchronous like `/transaction`.
#[utoipa::path(
    post,
    path = "/payment",
    operation_id = "submitPayment",
    tag = "payments",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdRequired, crate::openapi::PreferWait),
    request_body(content = PaymentRequest, content_type = "application/json"),
    responses(
        crate::openapi::AcceptedResponse,
        (status = 201, description = "Approved within `Prefer: wait`: the status, the bill as \
            `result`.", body = crate::openapi::ApprovedEnvelope,
            links(("getStatus" = (operation_id = "getStatus",
                parameters(("api_call_id" = "$response.body#/api_call_id")))))),
        (status = 400, description = "Invalid (nothing claimed), or rejected within `Prefer: \
            wait` as `OVERPAYMENT`.", body = crate::openapi::PaymentBadRequest),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "Rejected within `Prefer: wait`: `CONTRACT_NOT_FOUND`.",
            body = crate::openapi::ContractNotFoundEnvelope),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID`, or `DUPLICATE_EXTERNAL_ID` \
            within `Prefer: wait`.", body = crate::openapi::SubmitConflict),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn payment(
    State(state): State<AppState>,
    ctx: Caller,
    PreferWait(wait): PreferWait,
    deadline: Deadline,
    Body(request): Body<PaymentRequest>,
) -> Result<Reply<Submitted>, ApiError> {
    let payload = CommandPayload::Payment(PaymentPayload {
        nomor_kontrak: request.nomor_kontrak,
        jumlah: request.jumlah,
    });
    submit(&state, &ctx, wait, deadline, payload).await
}

/// Submit a refund.
///
/// The contract's merchant and admins. Cancels part of what the consumer owes on a contract,
/// from the last installment backwards; what the consumer already paid beyond that is owed
/// back to them (`dikembalikan_ke_konsumen`). The tenor's limit grows by what was cancelled.
/// Refunding everything still refundable cancels the contract. Asynchronous like
/// `/transaction`.
#[utoipa::path(
    post,
    path = "/refund",
    operation_id = "submitRefund",
    tag = "refunds",
    security(("client_id" = [], "timestamp" = [], "signature" = [])),
    params(crate::openapi::ExternalIdRequired, crate::openapi::PreferWait),
    request_body(content = RefundRequest, content_type = "application/json"),
    responses(
        crate::openapi::AcceptedResponse,
        (status = 201, description = "Approved within `Prefer: wait`: the status, the refund \
            as `result`.", body = crate::openapi::ApprovedEnvelope,
            links(
                ("getStatus" = (operation_id = "getStatus",
                    parameters(("api_call_id" = "$response.body#/api_call_id")))),
                ("getContract" = (operation_id = "getContract",
                    parameters(("nomor_kontrak" = "$response.body#/message_data/result/nomor_kontrak")))),
            )),
        (status = 400, description = "Invalid (nothing claimed), or rejected within `Prefer: \
            wait` as `REFUND_EXCEEDS`.", body = crate::openapi::RefundBadRequest),
        (status = 404, description = "Rejected within `Prefer: wait`: `CONTRACT_NOT_FOUND` \
            (unknown, or another merchant's).", body = crate::openapi::ContractNotFoundEnvelope),
        (status = 409, description = "`CONFLICT_EXTERNAL_ID`, or `DUPLICATE_EXTERNAL_ID` \
            within `Prefer: wait`.", body = crate::openapi::SubmitConflict),
        crate::openapi::SignedErrors,
    ),
)]
pub(crate) async fn refund(
    State(state): State<AppState>,
    ctx: Caller,
    PreferWait(wait): PreferWait,
    deadline: Deadline,
    Body(request): Body<RefundRequest>,
) -> Result<Reply<Submitted>, ApiError> {
    let payload = CommandPayload::Refund(RefundPayload {
        nomor_kontrak: request.nomor_kontrak,
        jumlah: request.jumlah,
        alasan: request.alasan,
    });
    submit(&state, &ctx, wait, deadline, payload).await
}

/// What a submission answers: accepted and pending, or decided within `Prefer: wait`.
#[derive(Serialize)]
#[serde(untagged)]
pub(crate) enum Submitted {
    Pending(Accepted),
    Decided(CallStatus),
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum PendingState {
    Pending,
}

/// An accepted asynchronous call.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Accepted {
    status: PendingState,
    /// Where to poll: `/status/{api_call_id}`, as in `Location`.
    #[schema(pattern = "^/status/API_CALL_[0-9A-Za-z]+$")]
    status_url: String,
}

async fn submit(
    state: &AppState,
    ctx: &Caller,
    wait: Option<std::time::Duration>,
    deadline: Deadline,
    payload: CommandPayload,
) -> Result<Reply<Submitted>, ApiError> {
    let call_type = payload.call_type();
    let endpoint = call_type.endpoint();
    let external_id = ctx.external_id.clone().unwrap_or_default();
    let mut stages = Stages::start("xyz_submit_stage_seconds");
    // Redis keeps ids for 24 h; MySQL keeps every id that reached a worker, forever. Both are
    // asked at once: the order does not matter (MySQL's unique key is what decides, in the
    // worker), and a lookup wasted on a refused claim is cheap, since lookups are batched and
    // bounded in flight.
    //
    // Redis also keeps a filter of every id ever claimed (`shared::cache::seen_positions`):
    // while it is complete, a claim it proves new skips MySQL, and the lookup waits for the
    // claim's verdict instead of running beside it.
    //
    // The claim writes the call's PENDING status too: a client can only learn the call id
    // from the 202, so it reads PENDING from then on, and the claim's mark as accepted need
    // not be waited for (`crate::acceptances`).
    let pending = pending_record(ctx, &ctx.api_call_id, call_type, ctx.started_at);
    let lookup = || {
        state
            .lookups
            .find(&ctx.key.merchant_id, endpoint, &external_id)
    };
    let (claim, found) = if state
        .seen_complete
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let claim = claims::claim(state, ctx, endpoint, Some(&pending)).await?;
        let found = if claim.seen == Seen::New {
            metrics::counter!("xyz_external_id_lookups_total", "result" => "skipped").increment(1);
            Ok(None)
        } else {
            lookup().await
        };
        (claim, found)
    } else {
        let (claim, found) = tokio::join!(
            claims::claim(state, ctx, endpoint, Some(&pending)),
            lookup()
        );
        (claim?, found)
    };
    stages.mark("claim");
    // Usually this request's own call; an earlier call when it is being re-sent.
    let call = claim.api_call_id.clone();
    let accepted_at = claim.resumed_at.unwrap_or(ctx.started_at);

    match found {
        Ok(Some((original, sha))) if original != call => {
            return Err(claim.conflict_with(state, &original, &sha).await);
        }
        // The re-sent call was decided already: nothing to send again.
        Ok(Some(_)) => {
            claim.accept(state, None).await;
            return Ok(pending_reply(&call));
        }
        Ok(None) => {}
        Err(e) => {
            claim.release(state).await;
            return Err(ApiError::unavailable(&e));
        }
    }

    // Waiters beyond the cap get their 202 at once rather than holding a connection.
    let wait = wait.filter(|_| state.waiters.len() < state.max_waiters);
    let waiter = wait.map(|_| state.waiters.register(&call));
    let command = Command {
        v: COMMAND_SCHEMA_VERSION,
        api_call_id: call.clone(),
        merchant_id: ctx.key.merchant_id.clone(),
        client_id: ctx.key.client_id.clone(),
        external_id,
        body_sha256: hex::encode(claim.body_sha256),
        accepted_at,
        reply_to: waiter.as_ref().map(|_| state.waiters.channel.clone()),
        payload,
    };
    if let Err(e) = state.commands.send(&command).await {
        // A lost confirm leaves the command maybe queued: the retry re-sends this very call
        // (the worker applies a call once), instead of a new one the worker would reject as
        // a duplicate.
        // A call being re-sent stays unconfirmed whatever this attempt's failure: its first
        // publish may be queued.
        if e.is_ambiguous() || claim.resumed_at.is_some() {
            claim.unconfirmed(state).await;
        } else {
            claim.release(state).await;
        }
        return Err(ApiError::unavailable(&e));
    }
    stages.mark("publish");
    accepted(state, ctx, &claim, call_type, accepted_at).await;
    stages.mark("accept");

    if let (Some(mut waiter), Some(wait)) = (waiter, wait) {
        // The outcome, or the 202, comes before the request's deadline.
        let outcome = match tokio::time::timeout(deadline.cap(wait), &mut waiter.rx).await {
            Ok(Ok(record)) => Some(record),
            // Timed out or the listener is gone: the cache may still have the answer.
            _ => state.cache.get_status(&call).await.ok().flatten(),
        };
        if let Some(record) = outcome.filter(|r| r.status.is_final()) {
            return Ok(final_reply(record.status));
        }
    }
    Ok(pending_reply(&call))
}

/// The broker has the command: the claim becomes permanent. A fresh call reads PENDING since
/// its claim, and the mark is queued for the background writer; a resumed call (re-sent
/// after a lost confirm) waits for its mark, which also writes its PENDING status unless one
/// exists.
async fn accepted(
    state: &AppState,
    ctx: &Caller,
    claim: &Claimed,
    call_type: shared::messages::CallType,
    accepted_at: chrono::DateTime<chrono::Utc>,
) {
    if claim.wrote_pending {
        state
            .acceptances
            .mark(claim.key.clone(), claim.api_call_id.clone())
            .await;
    } else {
        let record = pending_record(ctx, &claim.api_call_id, call_type, accepted_at);
        claim.accept(state, Some(&record)).await;
    }
    tracing::debug!(call_type = call_type.as_str(), "accepted");
}

/// `api_call_id` PENDING since `accepted_at`, as the status cache keeps it.
fn pending_record(
    ctx: &Caller,
    api_call_id: &str,
    call_type: shared::messages::CallType,
    accepted_at: chrono::DateTime<chrono::Utc>,
) -> StatusRecord {
    StatusRecord {
        merchant_id: ctx.key.merchant_id.clone(),
        status: CallStatus::pending(api_call_id, call_type, accepted_at),
    }
}

fn pending_reply(api_call_id: &str) -> Reply<Submitted> {
    let status_url = format!("/status/{api_call_id}");
    Reply {
        status: StatusCode::ACCEPTED,
        action: MessageAction::Accepted,
        data: Submitted::Pending(Accepted {
            status: PendingState::Pending,
            status_url: status_url.clone(),
        }),
        headers: vec![
            (header::LOCATION, status_url.clone()),
            (header::RETRY_AFTER, "1".to_owned()),
        ],
    }
}

/// A decided call answered synchronously: 201 when approved, the reason's status otherwise.
fn final_reply(status: CallStatus) -> Reply<Submitted> {
    let (code, action) = match (status.status, status.reason) {
        (CallState::Rejected, Some(reason)) => (reason.action().http_status(), reason.action()),
        _ => (201, MessageAction::Success),
    };
    Reply {
        status: StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        action,
        data: Submitted::Decided(status),
        headers: Vec::new(),
    }
}
