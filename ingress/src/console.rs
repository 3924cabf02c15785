//! The operator console (SPEC §15): a page and its script and style, from the binary (no
//! build step, nothing from the internet). The page signs every call in the browser with
//! WebCrypto, keeping the admin key in the tab's memory only; it is served unsigned, like the
//! docs page, under a policy that lets it load and call nothing but this origin.

use crate::error::ApiError;
use crate::routes::PathId;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("../assets/console/index.html");
const SCRIPT: &str = include_str!("../assets/console/console.js");
const STYLE: &str = include_str!("../assets/console/console.css");

/// Scripts, styles and calls from this origin only; no inline script or style, no frames, no
/// form posts elsewhere.
pub(crate) const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

fn served(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONSOLE_CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The operator console.
///
/// A page for operators: paste an admin key (kept in the tab's memory only), then health,
/// calls, users, contracts, keys and dead letters, every action a signed call to this API.
#[utoipa::path(
    get,
    path = "/console",
    operation_id = "console",
    tag = "operations",
    responses(
        (status = 200, description = "The console page.", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn page() -> Response {
    served(PAGE, "text/html; charset=utf-8")
}

/// A static asset of the console.
#[utoipa::path(
    get,
    path = "/console/{file}",
    operation_id = "consoleAsset",
    tag = "operations",
    params(("file" = String, Path, description = "`console.js` or `console.css`.")),
    responses(
        (status = 200, description = "The asset.",
            content(
                (String = "text/javascript"),
                (String = "text/css"),
            )),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub(crate) async fn asset(PathId(file): PathId) -> Result<Response, ApiError> {
    match file.as_str() {
        "console.js" => Ok(served(SCRIPT, "text/javascript; charset=utf-8")),
        "console.css" => Ok(served(STYLE, "text/css; charset=utf-8")),
        _ => Err(ApiError::not_found()),
    }
}
