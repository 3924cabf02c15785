//! `xyzctl call`: one signed request (SPEC §2), printed as status line and body.

use anyhow::Context;
use shared::client::{Credentials, SignedClient};

pub(crate) struct CallArgs<'a> {
    pub(crate) base_url: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) secret: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) body: Option<&'a str>,
    pub(crate) external_id: Option<String>,
    pub(crate) wait: Option<u32>,
}

pub(crate) async fn call(args: CallArgs<'_>) -> anyhow::Result<bool> {
    let method: reqwest::Method = args
        .method
        .to_ascii_uppercase()
        .parse()
        .context("HTTP method")?;
    // Every POST needs an external id; make one unless the operator chose it.
    let external_id = match (&args.external_id, &method) {
        (Some(e), _) => Some(e.clone()),
        (None, &reqwest::Method::POST) => Some(format!("xyzctl-{}", uuid::Uuid::new_v4().simple())),
        _ => None,
    };
    let prefer = args.wait.map(|n| format!("wait={n}"));
    let client = SignedClient::new(reqwest::Client::new(), args.base_url);
    let key = Credentials {
        client_id: args.client_id,
        secret: args.secret,
    };
    let mut request = client
        .request(key, method, args.path)
        .external_id(external_id.as_deref())
        .body(args.body.unwrap_or("").as_bytes());
    if let Some(prefer) = &prefer {
        request = request.header("Prefer", prefer);
    }
    let resp = request.send().await.context("request failed")?;
    println!("{}", resp.status);
    match resp.json() {
        Ok(v) => println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| resp.text())
        ),
        Err(_) => println!("{}", resp.text()),
    }
    Ok((200..300).contains(&resp.status))
}
