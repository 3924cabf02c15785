//! Consuming: manual acks, batches, in-process retries, dead-lettering of poison only.

use crate::config::WorkerConfig;
use crate::lanes::{lanes_for, split};
use crate::unit::{Decision, apply_batch_handing_off, lock_order};
use crate::webhooks::Handoff;
use backon::{ExponentialBuilder, Retryable};
use futures_util::StreamExt;
use futures_util::future::join_all;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Consumer};
use shared::amqp::Topology;
use shared::cache::{Cache, StatusRecord};
use shared::messages::{Command, DecodeError, decode_group};
use sqlx::MySqlPool;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Clone)]
pub(crate) struct Deps {
    pub(crate) pool: MySqlPool,
    pub(crate) cache: Cache,
    pub(crate) topology: Topology,
    pub(crate) config: WorkerConfig,
    /// Where the batches' webhook events go once they commit.
    pub(crate) handoff: Option<Handoff>,
}

/// Runs one consumer until `stop` flips, reconnecting whenever the broker goes away: to the
/// next node of `AMQP_URL` first, with a backoff between rounds in which no node answered.
/// Unacked deliveries of a dead channel are redelivered by the broker, and the idempotency
/// rows make a second application impossible.
pub(crate) async fn run_consumer(deps: Deps, index: usize, mut stop: watch::Receiver<bool>) {
    let mut delay = Duration::from_millis(100);
    let nodes = &deps.config.amqp.url;
    let mut start = 0;
    while !*stop.borrow() {
        let opened = nodes
            .first_answering(start, shared::amqp::NODE_TIMEOUT, "RabbitMQ", |node| {
                open(&deps, nodes.url(node), index)
            })
            .await;
        match opened {
            Ok(((conn, channel, consumer), node)) => {
                delay = Duration::from_millis(100);
                // When this connection dies, the next node is tried first.
                start = node + 1;
                let depth = if index == 0 {
                    conn.create_channel()
                        .await
                        .ok()
                        .map(|ch| tokio::spawn(watch_queues(ch, deps.topology.clone())))
                } else {
                    None
                };
                tracing::info!(consumer = index, node, host = %nodes.label(node), queue = %deps.topology.command_queue(), "consuming");
                consume(&deps, &channel, consumer, &mut stop).await;
                // Closing returns the deliveries still unsettled (a drain cut short, a broken
                // channel) to the queue at once.
                // Bounded: a connection left half-dead by a broker restart must not hold the exit.
                let closing = Duration::from_secs(2);
                let _ = tokio::time::timeout(closing, channel.close(200, "worker stopping".into()))
                    .await;
                if let Some(task) = depth {
                    task.abort();
                }
                let _ =
                    tokio::time::timeout(closing, conn.close(200, "worker stopping".into())).await;
            }
            Err(e) => {
                tracing::warn!(consumer = index, error = %e, retry_in_ms = delay.as_millis() as u64, "RabbitMQ unavailable");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Queue depth and consumer count, read every few seconds with passive declares.
async fn watch_queues(channel: Channel, topology: Topology) {
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..lapin::options::QueueDeclareOptions::default()
    };
    loop {
        for queue in [topology.command_queue(), topology.dead_letter_queue()] {
            match channel
                .queue_declare(queue.clone().into(), passive, FieldTable::default())
                .await
            {
                Ok(q) => {
                    metrics::gauge!("xyz_queue_depth", "queue" => queue.clone())
                        .set(f64::from(q.message_count()));
                    if queue == topology.command_queue() {
                        metrics::gauge!("xyz_queue_consumers").set(f64::from(q.consumer_count()));
                    }
                }
                Err(_) => return,
            }
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

async fn open(
    deps: &Deps,
    url: &str,
    index: usize,
) -> lapin::Result<(lapin::Connection, Channel, Consumer)> {
    let conn = shared::amqp::connect(url, &format!("worker-{index}")).await?;
    deps.topology.declare(&conn).await?;
    let channel = conn.create_channel().await?;
    // Per-consumer prefetch (global: false; global QoS closes quorum-queue channels).
    channel
        .basic_qos(deps.config.prefetch, BasicQosOptions { global: false })
        .await?;
    let consumer = channel
        .basic_consume(
            deps.topology.command_queue().into(),
            format!("worker-{}-{index}", std::process::id()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok((conn, channel, consumer))
}

/// How long a stopping consumer keeps working off the deliveries it already holds: within
/// the worker's 9 s grace (`SHUTDOWN_GRACE`), leaving room for closing the channel.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Consumes until the stop signal, then drains: `basic.cancel` stops the broker sending, and
/// the deliveries already prefetched are applied and acked like any batch rather than handed
/// back. RabbitMQ 3.x counts every return against the delivery limit (a closed channel or a
/// requeueing nack alike), so a worker that stopped by returning its prefetch would spend one
/// of every prefetched command's deliveries. Whatever is left at `DRAIN_TIME` returns when
/// the channel closes.
async fn consume(
    deps: &Deps,
    channel: &Channel,
    mut consumer: Consumer,
    stop: &mut watch::Receiver<bool>,
) {
    let max = deps.config.batch_size.max(1) * deps.config.lanes.max(1);
    let linger = Duration::from_millis(deps.config.batch_linger_ms);
    // The previous batch's acks and status publishing, running while this batch is gathered
    // and applied: the MySQL transaction, the longest part, is what the loop waits for.
    let mut finishing: Option<tokio::task::JoinHandle<bool>> = None;
    // Set by the stop signal: when the drain ends, whatever it has left.
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        // Wait for the first delivery of a batch, for the stop signal, or for the drain's end.
        let first = tokio::select! {
            biased;
            _ = stop.changed(), if drain_until.is_none() => {
                if let Err(e) = channel
                    .basic_cancel(consumer.tag(), BasicCancelOptions::default())
                    .await
                {
                    tracing::warn!(error = %e, "basic.cancel failed; closing the channel");
                    break;
                }
                tracing::info!("stopped consuming; working off the prefetched deliveries");
                drain_until = Some(tokio::time::Instant::now() + DRAIN_TIME);
                continue;
            }
            d = consumer.next() => d,
            () = sleep_until_some(drain_until) => {
                tracing::warn!("prefetched deliveries left at the end of the drain return to the queue");
                break;
            }
        };
        let mut received = match first {
            Some(Ok(d)) => vec![Received::new(d)],
            Some(Err(e)) => {
                tracing::warn!(error = %e, "consumer failed; reconnecting");
                break;
            }
            None => break,
        };
        let mut commands = received[0].weight();
        // Then whatever else arrives within the linger time, up to the batch size (in
        // commands: a message may carry several).
        let deadline = tokio::time::Instant::now() + linger;
        // The consumer's stream ended (cancelled, or the channel failed): this batch is its last.
        let mut ended = false;
        while commands < max {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(Ok(d))) => {
                    let r = Received::new(d);
                    commands += r.weight();
                    received.push(r);
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(error = %e, "consumer failed mid-batch");
                    ended = true;
                    break;
                }
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(_) => break,
            }
        }
        // A batch in hand is always finished, even when stopping: commit, then ack.
        let Some(applied) = apply(deps, received).await else {
            break;
        };
        // Acks go out batch after batch: the previous batch's multiple-ack must not be sent
        // after this one's (it would settle nothing) nor this one's before the previous
        // batch's poison is nacked.
        if let Some(previous) = finishing.take()
            && !finished(previous).await
        {
            // The channel is gone: this batch is committed and will be redelivered, and its
            // decisions reported then.
            break;
        }
        let deps = deps.clone();
        finishing = Some(tokio::spawn(async move { finish(&deps, applied).await }));
        if ended {
            break;
        }
    }
    if let Some(previous) = finishing {
        finished(previous).await;
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long a batch's acks and status publishing may take before the channel is presumed
/// dead: its deliveries are then redelivered (and reported again), never lost.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`finish`] tries to cache a batch's statuses before it acks without them.
const CACHE_BUDGET: Duration = Duration::from_secs(1);

/// Whether the previous batch's tail finished with its channel still usable.
async fn finished(tail: tokio::task::JoinHandle<bool>) -> bool {
    match tokio::time::timeout(FINISH_TIMEOUT, tail).await {
        Ok(Ok(channel_ok)) => channel_ok,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "finishing a batch failed");
            false
        }
        Err(_) => {
            tracing::warn!("acks and statuses of a batch took over 5 s; reconnecting");
            false
        }
    }
}

/// A delivery and the commands it carries (one, or a group the ingress sent together).
struct Received {
    delivery: Delivery,
    commands: Result<Vec<Command>, DecodeError>,
}

impl Received {
    fn new(delivery: Delivery) -> Received {
        let commands = decode_group(&delivery.data);
        Received { delivery, commands }
    }

    /// What the message counts for in a batch: its commands (an undecodable one, one).
    fn weight(&self) -> usize {
        self.commands.as_ref().map_or(1, Vec::len)
    }
}

/// A batch committed in MySQL, to be acked and published by [`finish`].
struct Applied {
    deliveries: Vec<Delivery>,
    /// Each command with the index of its delivery, in the order they were applied.
    commands: Vec<(Command, usize)>,
    decisions: Vec<Decision>,
}

/// Decodes (dead-lettering undecodable messages) and applies the batch in one MySQL
/// transaction. `None` when the channel is gone.
async fn apply(deps: &Deps, received: Vec<Received>) -> Option<Applied> {
    metrics::counter!("xyz_messages_consumed_total").increment(received.len() as u64);
    let mut deliveries: Vec<Delivery> = Vec::with_capacity(received.len());
    // Each command with the index of its delivery.
    let mut commands: Vec<(Command, usize)> = Vec::with_capacity(received.len());
    for r in received {
        match r.commands {
            Ok(carried) => {
                let index = deliveries.len();
                deliveries.push(r.delivery);
                commands.extend(carried.into_iter().map(|c| (c, index)));
            }
            Err(e) => {
                let d = r.delivery;
                tracing::error!(error = %e, delivery_tag = d.delivery_tag, "poison message; dead-lettering");
                metrics::counter!("xyz_messages_dead_lettered_total", "cause" => "undecodable")
                    .increment(1);
                if d.nack(BasicNackOptions {
                    requeue: false,
                    multiple: false,
                })
                .await
                .is_err()
                {
                    return None;
                }
            }
        }
    }
    metrics::histogram!("xyz_batch_size").record(commands.len() as f64);
    if commands.is_empty() {
        return Some(Applied {
            deliveries,
            commands,
            decisions: Vec::new(),
        });
    }
    // The filter of claimed ids must hold every id before its row can exist in MySQL
    // (ingress/src/seen.rs); the claim set these bits, unless Redis has lost them since.
    let seen: Vec<_> = commands
        .iter()
        .map(|(c, _)| {
            deps.cache.seen_positions(
                &c.merchant_id,
                c.payload.call_type().endpoint(),
                &c.external_id,
            )
        })
        .collect();
    if let Err(e) = deps.cache.mark_seen(&seen).await {
        tracing::warn!(error = %e, "could not mark the batch's ids in the filter of claimed ids");
    }
    let lanes = lanes_for(commands.len(), deps.config.batch_size, deps.config.lanes);
    let lanes = split(&deps.pool, commands, |(c, _)| c, lanes).await;
    let applied = join_all(
        lanes
            .into_iter()
            .map(|lane| apply_lane(&deps.pool, deps.handoff.as_ref(), lane)),
    )
    .await;
    let mut commands = Vec::new();
    let mut decisions = Vec::new();
    for lane in applied {
        let (lane_commands, lane_decisions) = lane?;
        commands.extend(lane_commands);
        decisions.extend(lane_decisions);
    }
    Some(Applied {
        deliveries,
        commands,
        decisions,
    })
}

/// One lane of a batch in one MySQL transaction, in lock order, retried until it commits.
/// Returns the lane's commands in the order applied, with a decision each.
async fn apply_lane(
    pool: &MySqlPool,
    handoff: Option<&Handoff>,
    mut commands: Vec<(Command, usize)>,
) -> Option<(Vec<(Command, usize)>, Vec<Decision>)> {
    commands.sort_by_key(|(c, _)| lock_order(c));
    let refs: Vec<&Command> = commands.iter().map(|(c, _)| c).collect();
    let decisions = (|| async {
        let started = std::time::Instant::now();
        let result = apply_batch_handing_off(pool, &refs, handoff).await;
        metrics::histogram!("xyz_db_transaction_seconds").record(started.elapsed().as_secs_f64());
        result
    })
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(20))
                .with_max_delay(Duration::from_secs(5))
                .with_jitter()
                .without_max_times(),
        )
        .notify(|e, after| {
            metrics::counter!("xyz_batch_retries_total").increment(1);
            tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, batch = refs.len(), "batch failed; retrying")
        })
        .await;
    match decisions {
        Ok(d) => Some((commands, d)),
        Err(e) => {
            // Unreachable with unlimited retries; leave the deliveries to be redelivered.
            tracing::error!(error = %e, "batch abandoned");
            None
        }
    }
}

/// Dead-letters the messages holding poison, caches the final statuses and answers the
/// waiters, then acks the rest. Returns false when the channel is gone.
async fn finish(deps: &Deps, applied: Applied) -> bool {
    let Applied {
        deliveries,
        commands,
        decisions,
    } = applied;

    // A message holding a command that cannot be applied is dead-lettered whole, its other
    // commands included: they are committed, and a replay reports their first decisions
    // without changing anything.
    let mut poisoned = vec![false; deliveries.len()];
    for ((command, index), decision) in commands.iter().zip(&decisions) {
        if let Decision::Poison(why) = decision {
            tracing::error!(api_call_id = %command.api_call_id, reason = %why, "unappliable command; dead-lettering its message");
            poisoned[*index] = true;
        }
    }
    // Poison first, one by one; then every other delivery with a single multiple-ack of the
    // highest tag. Safe because a consumer works one batch at a time: every delivery up to
    // that tag still unsettled on this channel belongs to this batch and is final.
    for (delivery, _) in deliveries.iter().zip(&poisoned).filter(|(_, p)| **p) {
        metrics::counter!("xyz_messages_dead_lettered_total", "cause" => "unappliable")
            .increment(1);
        let nacked = delivery
            .nack(BasicNackOptions {
                requeue: false,
                multiple: false,
            })
            .await;
        if let Err(e) = nacked {
            tracing::warn!(error = %e, delivery_tag = delivery.delivery_tag, "nack failed; the broker will redeliver");
            return false;
        }
    }
    let last_final = deliveries
        .iter()
        .zip(&poisoned)
        .filter(|(_, p)| !**p)
        .map(|(d, _)| d)
        .max_by_key(|d| d.delivery_tag);
    let mut finals: Vec<(StatusRecord, Option<String>)> = Vec::with_capacity(decisions.len());
    for ((command, _), decision) in commands.iter().zip(decisions) {
        if let Decision::Final(record) = decision {
            // Every decision is an `async_outcomes` row; the batch gets one info line below.
            tracing::debug!(
                api_call_id = %command.api_call_id,
                status = record.status.status.as_str(),
                reason = record.status.reason.map(|r| r.as_str()).unwrap_or(""),
                "decided"
            );
            metrics::counter!(
                "xyz_outcomes_total",
                "type" => record.status.call_type.as_str(),
                "status" => record.status.status.as_str(),
                "reason" => record.status.reason.map(|r| r.as_str()).unwrap_or("")
            )
            .increment(1);
            finals.push((record, command.reply_to.clone()));
        }
    }
    tracing::info!(
        commands = commands.len(),
        messages = deliveries.len(),
        decided = finals.len(),
        dead_lettered = poisoned.iter().filter(|p| **p).count(),
        "batch done"
    );
    // Statuses go to Redis before the ack: the ingress trusts a young PENDING there without
    // reading MySQL, so a decision must not be acked while its cache write is still to come.
    // A worker that dies in between is redelivered, and the replay reports the decision again.
    // A Redis that hangs gets CACHE_BUDGET, not its response timeout per try: the acks must
    // not wait for it past FINISH_TIMEOUT, or the batch would be redelivered over and over.
    let cached = (|| deps.cache.publish_final(&finals)).retry(
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(10))
            .with_max_delay(Duration::from_millis(200))
            .with_max_times(3),
    );
    let failure = match tokio::time::timeout(CACHE_BUDGET, cached).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {CACHE_BUDGET:?}")),
    };
    if let Some(error) = failure {
        tracing::warn!(%error, "statuses not cached; GET /status reads MySQL once a PENDING is older than its trust window");
    }
    let mut channel_ok = true;
    if let Some(last) = last_final {
        match last.ack(BasicAckOptions { multiple: true }).await {
            Ok(_) => metrics::counter!("xyz_messages_acked_total").increment(finals.len() as u64),
            Err(e) => {
                tracing::warn!(error = %e, "ack failed; the broker will redeliver and the outcomes will be reported again");
                channel_ok = false;
            }
        }
    }
    channel_ok
}
