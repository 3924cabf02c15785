//! A client of the engine's API that signs each request as SPEC §2 says: `X-Client-Id`,
//! `X-Timestamp` and `X-Signature` over [`string_to_sign`]. The one signer of the load
//! generator, `xyzctl call` and the integration tests. Behind the `client` feature, so the
//! ingress and worker binaries do not compile an HTTP client.

use crate::signature::{sign, string_to_sign};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};

/// The engine's API at one base URL, over one connection pool.
#[derive(Debug, Clone)]
pub struct SignedClient {
    http: reqwest::Client,
    base: String,
}

/// The API key a request is signed with.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub client_id: &'a str,
    pub secret: &'a str,
}

impl SignedClient {
    /// `base_url` without a trailing slash is prepended to every path.
    pub fn new(http: reqwest::Client, base_url: &str) -> SignedClient {
        SignedClient {
            http,
            base: base_url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The pool underneath, for the unsigned endpoints (`/healthz`, `/readyz`).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A request of `path_and_query`, exactly as it is signed and sent.
    pub fn request<'a>(
        &'a self,
        key: Credentials<'a>,
        method: Method,
        path_and_query: &'a str,
    ) -> SignedRequest<'a> {
        SignedRequest {
            client: self,
            key,
            method,
            path: path_and_query,
            external_id: None,
            body: b"",
            headers: Vec::new(),
            timestamp: None,
        }
    }
}

/// One request being built; [`SignedRequest::send`] signs it and sends it.
#[must_use = "a request does nothing until it is sent"]
pub struct SignedRequest<'a> {
    client: &'a SignedClient,
    key: Credentials<'a>,
    method: Method,
    path: &'a str,
    external_id: Option<&'a str>,
    body: &'a [u8],
    headers: Vec<(&'a str, &'a str)>,
    timestamp: Option<&'a str>,
}

impl<'a> SignedRequest<'a> {
    /// `X-External-Id`, which the signature covers.
    pub fn external_id(mut self, external_id: Option<&'a str>) -> Self {
        self.external_id = external_id;
        self
    }

    /// The body, sent as JSON unless a `Content-Type` header says otherwise.
    pub fn body(mut self, body: &'a [u8]) -> Self {
        self.body = body;
        self
    }

    /// A header sent as given and not signed (`Prefer`, a `Content-Type` of a test).
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// `X-Timestamp` other than now (unix seconds as text), for tests of the time window.
    pub fn timestamp(mut self, timestamp: &'a str) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    pub async fn send(self) -> Result<SignedResponse, reqwest::Error> {
        let now;
        let timestamp = match self.timestamp {
            Some(t) => t,
            None => {
                now = chrono::Utc::now().timestamp().to_string();
                &now
            }
        };
        let sts = string_to_sign(
            self.method.as_str(),
            self.path,
            timestamp,
            self.external_id,
            self.body,
        );
        let mut request = self
            .client
            .http
            .request(self.method, format!("{}{}", self.client.base, self.path))
            .header("X-Client-Id", self.key.client_id)
            .header("X-Timestamp", timestamp)
            .header("X-Signature", sign(self.key.secret.as_bytes(), &sts))
            .body(self.body.to_vec());
        if let Some(external_id) = self.external_id {
            request = request.header("X-External-Id", external_id);
        }
        let typed = self
            .headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE.as_str()));
        if !self.body.is_empty() && !typed {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in self.headers {
            request = request.header(name, value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = Vec::from(response.bytes().await?);
        Ok(SignedResponse {
            status,
            headers,
            body,
        })
    }
}

/// An answer, read whole.
#[derive(Debug)]
pub struct SignedResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl SignedResponse {
    /// The body as JSON (the envelope of SPEC §3 on every answer of the API).
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as text, lossily.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Retry-After` in seconds, when the answer has one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
    }
}
