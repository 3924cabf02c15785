//! The dead-letter queue: list what is there, and re-drive commands that are good.

use anyhow::Context;
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::{BasicProperties, Channel};
use serde_json::json;
use shared::amqp::Topology;
use shared::messages::decode_group;

/// Takes every message currently in the dead-letter queue (unacked: they return to the queue
/// if this process dies), so each is seen exactly once per run.
async fn take_all(channel: &Channel, topology: &Topology) -> anyhow::Result<Vec<BasicGetMessage>> {
    let mut messages = Vec::new();
    while let Some(m) = channel
        .basic_get(
            topology.dead_letter_queue().into(),
            BasicGetOptions { no_ack: false },
        )
        .await?
    {
        messages.push(m);
        if messages.len() >= 100_000 {
            break;
        }
    }
    Ok(messages)
}

/// One line per command of the message (a message may carry a group of them).
fn describe(m: &BasicGetMessage) -> Vec<serde_json::Value> {
    let reason = m
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-first-death-reason").cloned())
        .map(|v| format!("{v:?}"));
    let message_id = m
        .delivery
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string());
    match decode_group(&m.delivery.data) {
        Ok(commands) => commands
            .iter()
            .map(|c| {
                json!({
                    "api_call_id": c.api_call_id,
                    "type": c.payload.call_type().as_str(),
                    "merchant_id": c.merchant_id,
                    "external_id": c.external_id,
                    "accepted_at": c.accepted_at,
                    "message_id": message_id,
                    "death_reason": reason,
                    "replayable": true,
                })
            })
            .collect(),
        Err(e) => vec![json!({
            "message_id": message_id,
            "bytes": m.delivery.data.len(),
            "error": e.to_string(),
            "death_reason": reason,
            "replayable": false,
        })],
    }
}

pub(crate) async fn list(amqp_url: &str, topology: &Topology) -> anyhow::Result<()> {
    let conn = shared::amqp::connect(amqp_url, "xyzctl-dlq")
        .await
        .context("RabbitMQ")?;
    topology.declare(&conn).await?;
    let channel = conn.create_channel().await?;
    let messages = take_all(&channel, topology).await?;
    for line in messages.iter().flat_map(describe) {
        println!("{line}");
    }
    // Everything goes back, untouched.
    for m in &messages {
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await?;
    }
    let _ = conn.close(200, "done".into()).await;
    eprintln!(
        "{} message(s) in {}",
        messages.len(),
        topology.dead_letter_queue()
    );
    Ok(())
}

/// Re-publishes the selected decodable commands to the command queue (confirmed), then
/// removes them from the dead-letter queue. A message carrying a group of commands is
/// replayed whole when any of them is selected. Undecodable messages stay where they are. Safe to
/// run twice: a command is removed only after its re-publish is confirmed, and the workers'
/// idempotency records make a command that runs twice count once.
pub(crate) async fn replay(
    amqp_url: &str,
    topology: &Topology,
    ids: &[String],
    all: bool,
) -> anyhow::Result<()> {
    let conn = shared::amqp::connect(amqp_url, "xyzctl-dlq")
        .await
        .context("RabbitMQ")?;
    topology.declare(&conn).await?;
    let channel = conn.create_channel().await?;
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let messages = take_all(&channel, topology).await?;
    let mut replayed = 0;
    for m in &messages {
        let selected = match decode_group(&m.delivery.data) {
            Ok(commands) => all || commands.iter().any(|c| ids.contains(&c.api_call_id)),
            Err(_) => false,
        };
        if !selected {
            m.delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await?;
            continue;
        }
        let mut props = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = m.delivery.properties.message_id() {
            props = props.with_message_id(id.clone());
        }
        let confirm = publisher
            .basic_publish(
                "".into(),
                topology.command_queue().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &m.delivery.data,
                props,
            )
            .await?
            .await?;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            anyhow::bail!("the broker refused a replayed command; nothing removed for it");
        }
        m.delivery.ack(BasicAckOptions::default()).await?;
        replayed += 1;
        println!("{}", json!({"replayed": describe(m)}));
    }
    let _ = conn.close(200, "done".into()).await;
    eprintln!("replayed {replayed} of {} message(s)", messages.len());
    Ok(())
}
