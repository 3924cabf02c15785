//! The first checks of every signed request (SPEC §2, §3): the body's size (413), then the
//! signature (401). A request that passes carries its key ([`Signer`]) and its body
//! ([`SignedBody`]) to the checks after it.

use crate::api_keys::Lookup;
use crate::error::ApiError;
use crate::pipeline::AuditDraft;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use shared::db::keys::ActiveKey;
use shared::envelope::MessageAction;
use shared::signature;
use std::sync::Arc;

/// Bodies over this are refused with 413 (nginx enforces the same limit).
pub(crate) const MAX_BODY_BYTES: usize = 65_536;

/// The key that signed this request.
#[derive(Clone)]
pub(crate) struct Signer(pub Arc<ActiveKey>);

/// The body, as signed.
#[derive(Clone)]
pub(crate) struct SignedBody(pub Bytes);

/// What the request signed besides its body: its signature (lowercase hex, what a replay
/// repeats) and its `X-External-Id` as sent.
#[derive(Clone)]
pub(crate) struct Signed {
    pub signature: String,
    pub external_id: Option<String>,
}

/// Middleware: body size, then signature.
pub(crate) async fn signed(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let draft = AuditDraft::of(&parts);
    let body = match read_body(&parts.headers, body).await {
        Ok(body) => body,
        Err(e) => {
            if let Some(draft) = &draft {
                draft.audited(None);
            }
            return e.into_response();
        }
    };
    // Kept as bytes: what the audit row keeps of them depends on the answer (an unsigned body
    // is never parsed).
    if let Some(draft) = &draft {
        draft.audited(Some(body.clone()));
    }
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    // Signed as sent (UTF-8 included) so a well-signed but malformed id is a 400, not a 401.
    let external_id = parts
        .headers
        .get("x-external-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let (key, signature) = match authenticate(
        &state,
        &parts.method,
        path_and_query,
        &parts.headers,
        external_id.as_deref(),
        &body,
    ) {
        Ok(signed) => signed,
        Err(e) => return e.into_response(),
    };
    if let Some(draft) = &draft {
        draft.signed_by(&key);
    }
    parts.extensions.insert(Signer(key));
    parts.extensions.insert(Signed {
        signature,
        external_id,
    });
    parts.extensions.insert(SignedBody(body.clone()));
    next.run(Request::from_parts(parts, Body::from(body))).await
}

async fn read_body(headers: &HeaderMap, body: Body) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            MessageAction::PayloadTooLarge,
            "the body is over 65536 bytes",
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())
}

/// A header as text; a header that is not visible ASCII cannot be signed or used.
fn header_text(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => match v.to_str() {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(ApiError::signature(format!("{name} header is malformed"))),
        },
    }
}

fn authenticate(
    state: &AppState,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    external_id: Option<&str>,
    body: &[u8],
) -> Result<(Arc<ActiveKey>, String), ApiError> {
    let required = |name: &str| -> Result<String, ApiError> {
        header_text(headers, name)?
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::signature(format!("{name} header is missing")))
    };
    let client_id = required("X-Client-Id")?;
    let timestamp = required("X-Timestamp")?;
    let provided = required("X-Signature")?;
    signature::timestamp_within_window(&timestamp, Utc::now().timestamp())
        .map_err(|e| ApiError::signature(e.to_string()))?;
    let key = match state.api_keys.get(&client_id) {
        Lookup::Found(key) => key,
        Lookup::Unknown => return Err(ApiError::signature("unknown or revoked X-Client-Id")),
        Lookup::Stale => {
            metrics::counter!("xyz_api_keys_stale_total").increment(1);
            return Err(ApiError::unavailable(
                &"the API keys could not be refreshed from MySQL",
            ));
        }
    };
    let sts = signature::string_to_sign(
        method.as_str(),
        path_and_query,
        &timestamp,
        external_id,
        body,
    );
    let now = Utc::now();
    let valid = signature::verify(&key.secret, &sts, &provided)
        || key
            .previous_secret
            .as_ref()
            .is_some_and(|(old, until)| *until > now && signature::verify(old, &sts, &provided));
    if !valid {
        return Err(ApiError::signature(
            "X-Signature does not match the request",
        ));
    }
    Ok((key, provided.to_ascii_lowercase()))
}
