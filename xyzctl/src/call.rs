//! `xyzctl call`: one signed request (SPEC §2), printed as status line and body.

use anyhow::Context;
use shared::signature::{sign, string_to_sign};

pub struct CallArgs<'a> {
    pub base_url: &'a str,
    pub client_id: &'a str,
    pub secret: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub body: Option<&'a str>,
    pub external_id: Option<String>,
    pub wait: Option<u32>,
}

pub async fn call(args: CallArgs<'_>) -> anyhow::Result<bool> {
    let method = args.method.to_ascii_uppercase();
    let body = args.body.unwrap_or("").as_bytes();
    // Every POST needs an external id; make one unless the operator chose it.
    let external_id = match (&args.external_id, method.as_str()) {
        (Some(e), _) => Some(e.clone()),
        (None, "POST") => Some(format!("xyzctl-{}", uuid::Uuid::new_v4().simple())),
        _ => None,
    };
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let sts = string_to_sign(&method, args.path, &timestamp, external_id.as_deref(), body);
    let signature = sign(args.secret.as_bytes(), &sts);
    let url = format!("{}{}", args.base_url.trim_end_matches('/'), args.path);
    let mut req = reqwest::Client::new()
        .request(method.parse().context("HTTP method")?, url)
        .header("X-Client-Id", args.client_id)
        .header("X-Timestamp", &timestamp)
        .header("X-Signature", signature)
        .body(body.to_vec());
    if let Some(e) = &external_id {
        req = req.header("X-External-Id", e);
    }
    if !body.is_empty() {
        req = req.header("Content-Type", "application/json");
    }
    if let Some(n) = args.wait {
        req = req.header("Prefer", format!("wait={n}"));
    }
    let resp = req.send().await.context("request failed")?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    println!("{}", status.as_u16());
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => println!("{}", serde_json::to_string_pretty(&v).unwrap_or(text)),
        Err(_) => println!("{text}"),
    }
    Ok(status.is_success())
}
