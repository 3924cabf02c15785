//! `loadgen floor`: the round trips an acceptance cannot avoid, each timed alone, one at a
//! time, with a pause between samples as between sparse requests: the broker's confirm of one
//! persistent message (the ingress's own `Publisher`, on a scratch queue declared exactly as
//! the command queue), a Redis command, an HTTP round trip through nginx to the ingress
//! (`GET /healthz`), and two wake-ups between threads (what every hand-off between processes
//! or threads pays when the core it lands on is idle). An acceptance makes one of each of the
//! first three in turn, so on an idle engine its latency cannot beat their sum, nor its p99
//! the broker's p99: this is the machine's floor under the accept-latency target.

use crate::api::Api;
use crate::util::{Percentiles, ms};
use anyhow::{Context, Result, ensure};
use serde_json::json;
use shared::amqp::{Publisher, Topology};
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub(crate) struct FloorArgs {
    #[command(flatten)]
    engine: crate::util::EngineUrl,
    /// The broker (only a scratch queue of its own is used, deleted afterwards).
    #[command(flatten)]
    amqp: shared::config::AmqpConfig,
    /// Redis (one key under the prefix, deleted afterwards).
    #[command(flatten)]
    redis: shared::config::RedisConfig,
    /// Samples of each round trip.
    #[arg(long, env = "LOADGEN_FLOOR_SAMPLES", default_value_t = 1000)]
    samples: usize,
    /// Pause between two samples, in milliseconds (at 700 requests/s one arrives every 1.4 ms).
    #[arg(long, env = "LOADGEN_FLOOR_GAP_MS", default_value_t = 1.0)]
    gap_ms: f64,
}

pub(crate) async fn floor(args: FloorArgs) -> Result<ExitCode> {
    ensure!(args.samples > 0, "--samples must be at least 1");
    let gap = Duration::try_from_secs_f64(args.gap_ms / 1000.0)
        .ok()
        .context("--gap-ms must be a number of milliseconds, 0 or more")?;

    let broker = broker(&args, gap).await?;
    let redis = redis(&args, gap).await?;
    let http = http(&args, gap).await?;
    let wake = tokio::task::spawn_blocking({
        let samples = args.samples;
        move || thread_wake(samples, gap)
    })
    .await
    .context("the wake-up probe failed")?;

    println!(
        "round trip, one at a time ({} samples each, {} ms apart):",
        args.samples, args.gap_ms
    );
    println!(
        "  {:<34} {:>8} {:>8} {:>8} {:>8}",
        "", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );
    for (what, p) in [
        ("broker confirm (quorum queue)", &broker),
        ("Redis command", &redis),
        ("HTTP via nginx (GET /healthz)", &http),
        ("two wake-ups between threads", &wake),
    ] {
        println!(
            "  {what:<34} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
            p.p50, p.p95, p.p99, p.max
        );
    }
    println!(
        "{}",
        json!({
            "samples": args.samples,
            "gap_ms": args.gap_ms,
            "broker_confirm_ms": broker,
            "redis_ms": redis,
            "http_healthz_ms": http,
            "thread_wake_round_trip_ms": wake,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// Persistent, mandatory messages through the ingress's publisher, each awaiting its confirm,
/// to a scratch copy of the command queue deleted afterwards.
async fn broker(args: &FloorArgs, gap: Duration) -> Result<Percentiles> {
    let topology = Topology::new(&format!("xyzfloor{}", std::process::id()));
    let queue = topology.command_queue();
    let publisher = Publisher::start(
        &args.amqp.url,
        "loadgen-floor",
        topology.clone(),
        Duration::from_secs(5),
    );
    let connected_by = Instant::now() + Duration::from_secs(10);
    while !publisher.is_connected() {
        ensure!(Instant::now() < connected_by, "could not reach RabbitMQ");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A real command's bytes (the scratch queue has no consumer).
    let payload = crate::ceiling::command("USR_floor", &mut crate::util::Rng::new(1))?.encode();
    let mut samples = Vec::with_capacity(args.samples);
    let mut failed = None;
    for i in 0..args.samples {
        tokio::time::sleep(gap).await;
        let t = Instant::now();
        if let Err(e) = publisher
            .publish(&queue, &format!("floor-{i}"), &payload)
            .await
        {
            failed = Some(e);
            break;
        }
        samples.push(ms(t.elapsed()));
    }
    // The scratch queues go whatever happened.
    let (conn, _) = shared::amqp::connect_any(&args.amqp.url, 0, "loadgen-floor-cleanup").await?;
    let channel = conn.create_channel().await?;
    for q in [queue, topology.dead_letter_queue()] {
        channel
            .queue_delete(q.into(), lapin::options::QueueDeleteOptions::default())
            .await?;
    }
    channel
        .exchange_delete(
            topology.dead_letter_exchange().into(),
            lapin::options::ExchangeDeleteOptions::default(),
        )
        .await?;
    let _ = conn.close(200, "done".into()).await;
    if let Some(e) = failed {
        return Err(e).context("publishing to the scratch queue");
    }
    Ok(Percentiles::of(&mut samples))
}

/// `SET` with an expiry, as a claim writes, over the ingress's own kind of connection
/// (`shared::cache::connect`); the key is deleted afterwards.
async fn redis(args: &FloorArgs, gap: Duration) -> Result<Percentiles> {
    let mut conn = shared::cache::connect(&args.redis.url)?;
    // The connection is made on first use: not in a sample.
    redis::cmd("PING")
        .query_async::<()>(&mut conn)
        .await
        .context("connecting to Redis")?;
    let key = format!("{}:floor:{}", args.redis.prefix, std::process::id());
    let mut samples = Vec::with_capacity(args.samples);
    for i in 0..args.samples {
        tokio::time::sleep(gap).await;
        let t = Instant::now();
        redis::cmd("SET")
            .arg(&key)
            .arg(i)
            .arg("PX")
            .arg(60_000)
            .query_async::<()>(&mut conn)
            .await
            .context("SET")?;
        samples.push(ms(t.elapsed()));
    }
    redis::cmd("DEL")
        .arg(&key)
        .query_async::<()>(&mut conn)
        .await
        .context("DEL")?;
    Ok(Percentiles::of(&mut samples))
}

/// `GET /healthz` through nginx on one kept-alive connection.
async fn http(args: &FloorArgs, gap: Duration) -> Result<Percentiles> {
    let api = Api::new(&args.engine.base_url, 1, Duration::from_secs(5))?;
    let mut samples = Vec::with_capacity(args.samples);
    for _ in 0..args.samples {
        tokio::time::sleep(gap).await;
        let t = Instant::now();
        api.healthz().await?;
        samples.push(ms(t.elapsed()));
    }
    Ok(Percentiles::of(&mut samples))
}

/// A token sent to another thread and back: two wake-ups, nothing else.
fn thread_wake(samples: usize, gap: Duration) -> Percentiles {
    let (to_echo, echo_rx) = std::sync::mpsc::channel::<u32>();
    let (to_main, main_rx) = std::sync::mpsc::channel::<u32>();
    let echo = std::thread::spawn(move || {
        while let Ok(v) = echo_rx.recv() {
            if to_main.send(v).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        std::thread::sleep(gap);
        let t = Instant::now();
        if to_echo.send(i as u32).is_err() || main_rx.recv().is_err() {
            break;
        }
        out.push(ms(t.elapsed()));
    }
    drop(to_echo);
    let _ = echo.join();
    Percentiles::of(&mut out)
}
