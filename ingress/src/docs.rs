//! The docs page: Swagger UI from the binary (it needs no network), started by our own
//! script (`assets/swagger-initializer.js`), which loads `/openapi.json` and signs "Try it out"
//! requests per SPEC §2 with WebCrypto, so the key's secret never leaves the browser.

use crate::error::ApiError;
use crate::routes::PathId;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};

/// Swagger UI's own start script, replaced by ours.
const INITIALIZER: &str = include_str!("../assets/swagger-initializer.js");

/// The page loads its scripts, styles and the document from this origin only; Swagger UI
/// needs inline styles and `data:` images. Other responses keep `default-src 'none'`.
pub(crate) const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' \
    'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
    base-uri 'self'; form-action 'none'; frame-ancestors 'none'";

fn config() -> Arc<utoipa_swagger_ui::Config<'static>> {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    CONFIG
        .get_or_init(|| Arc::new(utoipa_swagger_ui::Config::from("/openapi.json")))
        .clone()
}

fn with_type(bytes: Vec<u8>, content_type: &str) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn asset_bytes(file: &str) -> Option<(Vec<u8>, String)> {
    let served = utoipa_swagger_ui::serve(file, config()).ok().flatten()?;
    if served.gzpipped {
        return None;
    }
    Some((served.bytes.into_owned(), served.content_type))
}

/// The API docs page.
///
/// Swagger UI, served from the binary (it needs no network). It signs "Try it out" requests
/// in the browser with the key entered under Authorize: `client_id` the key id, `signature`
/// the key's secret (never sent), `timestamp` anything (the page sets it).
#[utoipa::path(
    get,
    path = "/docs",
    operation_id = "docs",
    tag = "operations",
    responses(
        (status = 200, description = "The docs page.", body = String, content_type = "text/html"),
    ),
)]
pub(crate) async fn page() -> Response {
    let html = asset_bytes("index.html")
        .map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
        .replacen("<head>", "<head>\n    <base href=\"/docs/\" />", 1)
        .replace(
            "<title>Swagger UI</title>",
            "<title>XYZ MultiFinance API</title>",
        );
    let mut r = with_type(html.into_bytes(), "text/html; charset=utf-8");
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    r
}

/// A static asset of the docs page.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    operation_id = "docsAsset",
    tag = "operations",
    params(("file" = String, Path, description = "The asset's file name, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The asset (JavaScript, CSS or an image).",
            content(
                (String = "text/javascript"),
                (String = "text/css"),
                (String = "image/png"),
                (String = "text/html"),
            )),
        (status = 404, response = crate::openapi::NotFound),
    ),
)]
pub(crate) async fn asset(PathId(file): PathId) -> Result<Response, ApiError> {
    if file == "swagger-initializer.js" {
        return Ok(with_type(
            INITIALIZER.as_bytes().to_vec(),
            "text/javascript; charset=utf-8",
        ));
    }
    asset_bytes(&file)
        .map(|(bytes, content_type)| with_type(bytes, &content_type))
        .ok_or_else(ApiError::not_found)
}
