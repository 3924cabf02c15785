//! `loadgen unsigned`: what a flood of unsigned requests costs the engine. Each request is a
//! `POST /create-user` of a ~64 KiB body made of thousands of short keys (the worst case for
//! a parser) under a made-up signature, so every one must be refused with 401. Reports the
//! engine's CPU per refused request (every engine program's time while sending, from
//! `/proc`), to set against the CPU per accepted checkout of `loadgen run`.

use crate::cpu::{self, Snapshot};
use anyhow::Context;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub(crate) struct UnsignedArgs {
    #[command(flatten)]
    engine: crate::util::EngineUrl,
    /// Requests to send.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Size of each body (the engine refuses more than 65536 bytes with 413).
    #[arg(long, default_value_t = 65_000, value_parser = clap::value_parser!(u64).range(16..=65_536))]
    body_bytes: u64,
}

/// A JSON object of short unique keys, `{"k0":0,"k1":0,…}`, padded to `bytes`.
fn body_of(bytes: usize) -> Vec<u8> {
    let mut body = String::from("{");
    let mut i = 0;
    loop {
        let field = format!("{}\"k{i}\":0", if i == 0 { "" } else { "," });
        if body.len() + field.len() + 1 > bytes {
            break;
        }
        body.push_str(&field);
        i += 1;
    }
    body.push('}');
    body.into_bytes()
}

pub(crate) async fn unsigned(args: UnsignedArgs) -> anyhow::Result<ExitCode> {
    let body = body_of(args.body_bytes as usize);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .context("HTTP client")?;
    let url = format!("{}/create-user", args.engine.base_url.trim_end_matches('/'));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let before = Snapshot::take();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (http, url, body, next) = (http.clone(), url.clone(), body.clone(), next.clone());
        let requests = args.requests;
        tasks.push(tokio::spawn(async move {
            let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                let sent = http
                    .post(&url)
                    .header("Content-Type", "application/json")
                    .header("X-Client-Id", "ck_unsigned_flood")
                    .header("X-Timestamp", chrono::Utc::now().timestamp().to_string())
                    .header("X-External-Id", "unsigned-flood")
                    .header("X-Signature", "0".repeat(64))
                    .body(body.clone())
                    .send()
                    .await;
                let status = match sent {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let _ = r.bytes().await;
                        status
                    }
                    Err(_) => 0,
                };
                *statuses.entry(status).or_default() += 1;
            }
            statuses
        }));
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for task in tasks {
        for (status, n) in task.await.context("a sender task")? {
            *statuses.entry(status).or_default() += n;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let after = Snapshot::take();
    let usage = before
        .zip(after)
        .map(|(before, after)| cpu::usage(&before, &after, secs));
    let engine_ms_per_request = usage.as_ref().map(|u| u.engine_ms_per(args.requests));
    println!(
        "unsigned flood   {} requests of {} bytes in {secs:.2} s, statuses {statuses:?}",
        args.requests,
        body.len()
    );
    match &engine_ms_per_request {
        Some(ms) => println!("engine CPU       {ms:.3} ms per refused request"),
        None => println!("engine CPU       no reading (/proc is not readable here)"),
    }
    println!(
        "{}",
        json!({
            "series": "unsigned",
            "requests": args.requests,
            "body_bytes": body.len(),
            "secs": secs,
            "statuses": statuses,
            "load_window_cpu": usage,
            "engine_cpu_ms_per_request": engine_ms_per_request,
        })
    );
    let all_refused = statuses.keys().all(|s| *s == 401);
    Ok(if all_refused {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_one_object_of_unique_keys_within_the_size() {
        let body = body_of(65_000);
        assert!(
            body.len() <= 65_000 && body.len() > 64_000,
            "{}",
            body.len()
        );
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let keys = value.as_object().expect("an object").len();
        assert!(keys > 5_000, "{keys}");
    }
}
