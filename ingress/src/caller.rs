//! Who is calling, once the route is known (SPEC §3): the role the route admits (403), then
//! `X-External-Id` (400). Every signed endpoint takes a [`Caller`], so no endpoint runs
//! before these checks.

use crate::error::ApiError;
use crate::pipeline::{AuditDraft, CallId, set_by_a_layer};
use crate::rate::DeferredRate;
use crate::state::AppState;
use crate::verify::{Signed, SignedBody, Signer};
use axum::body::Bytes;
use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use shared::cache::Allowance;
use shared::db::keys::{ActiveKey, Role};
use shared::signature;
use std::sync::Arc;

/// Who a route admits. A route is for admins unless the route table says merchants may call
/// it too, or only merchants (a route layer that sets this extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Audience {
    Admins,
    Merchants,
    /// Merchants and nobody else: what only a merchant owns (its webhooks, SPEC §11).
    OnlyMerchants,
}

impl Audience {
    fn admits(self, role: Role) -> bool {
        match self {
            Audience::Admins => role == Role::Admin,
            Audience::Merchants => true,
            Audience::OnlyMerchants => role == Role::Merchant,
        }
    }
}

/// A verified request, as an endpoint sees it.
pub(crate) struct Caller {
    pub api_call_id: String,
    pub started_at: DateTime<Utc>,
    pub key: Arc<ActiveKey>,
    pub external_id: Option<String>,
    pub body: Bytes,
    /// The request's signature: a write without an external id is claimed by it.
    pub signature: String,
    deferred_rate: Option<DeferredRate>,
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.key.role == Role::Admin
    }

    /// Admins see everything; a merchant only what it owns (others get 404).
    pub fn owns(&self, merchant_id: &str) -> bool {
        self.is_admin() || self.key.merchant_id == merchant_id
    }

    /// What this request spends from its key's rate limit.
    pub fn allowance<'a>(&'a self, state: &AppState) -> Allowance<'a> {
        crate::rate::allowance(state, &self.key)
    }

    /// The rate limit this request still has to spend, once: a submission spends it in the
    /// claim's Redis call (`crate::rate::at_claim`).
    pub fn take_deferred_rate<'a>(&'a self, state: &AppState) -> Option<Allowance<'a>> {
        self.deferred_rate
            .as_ref()
            .filter(|d| d.take())
            .map(|_| self.allowance(state))
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Caller, ApiError> {
        let Signer(key) = set_by_a_layer(parts, "the signature check")?;
        let SignedBody(body) = set_by_a_layer(parts, "the signed body")?;
        let Signed {
            signature,
            external_id,
        } = set_by_a_layer(parts, "the signature")?;
        let CallId {
            api_call_id,
            started_at,
        } = set_by_a_layer(parts, "the request frame")?;
        let audience = parts
            .extensions
            .get::<Audience>()
            .copied()
            .unwrap_or(Audience::Admins);
        if !audience.admits(key.role) {
            return Err(ApiError::forbidden());
        }
        match &external_id {
            None if parts.method == Method::POST => {
                return Err(ApiError::mandatory("X-External-Id"));
            }
            Some(ext) if !signature::is_valid_external_id(ext) => {
                return Err(ApiError::invalid_value(
                    "X-External-Id",
                    "must be 1-128 visible ASCII characters",
                ));
            }
            _ => {}
        }
        if let Some(draft) = AuditDraft::of(parts) {
            draft.external_id(external_id.as_deref());
        }
        Ok(Caller {
            api_call_id,
            started_at,
            key,
            external_id,
            body,
            signature,
            deferred_rate: parts.extensions.get::<DeferredRate>().cloned(),
        })
    }
}
