//! The dead-letter queue: what is there, and re-driving the commands that are good. The one
//! implementation behind `xyzctl dlq …` and the admin endpoints `/admin/dead-letters…`.
//!
//! Reading a queue means taking its messages (unacked, so they return if this process dies)
//! and giving back what is not removed. Two readers at once each see only part of the queue;
//! an operator's tool, not a path of the engine.

use crate::amqp::Topology;
use crate::messages::{CallType, decode_group};
use chrono::{DateTime, Utc};
use lapin::message::BasicGetMessage;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Connection};
use serde::Serialize;

/// The most messages one run takes from the queue: they are all held unacked at once.
pub const MAX_TAKEN: usize = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused a replayed command; nothing removed for it")]
    Refused,
}

/// One dead-lettered command, or a message that holds none that can be decoded.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeadLetter {
    /// The broker message's id (the api call id of the request that published it).
    pub message_id: Option<String>,
    /// Why the broker dead-lettered it, as it says: `rejected` (a worker found it poison),
    /// `delivery_limit`, `expired`.
    pub death_reason: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::ApiCallId>))]
    pub api_call_id: Option<String>,
    #[serde(rename = "type")]
    pub call_type: Option<CallType>,
    pub merchant_id: Option<String>,
    pub external_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::openapi::Instant>))]
    pub accepted_at: Option<String>,
    /// The message's size.
    pub bytes: usize,
    /// Why it cannot be decoded (then it cannot be replayed).
    pub error: Option<String>,
    pub replayable: bool,
}

/// Which dead letters to replay.
#[derive(Debug, Clone)]
pub enum Selection {
    All,
    /// The messages carrying any of these api call ids (a message is replayed whole).
    Ids(Vec<String>),
}

/// A header value as text: strings as themselves, anything else as its debug form.
fn header_text(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_owned(),
        other => format!("{other:?}"),
    }
}

fn death_reason(m: &BasicGetMessage) -> Option<String> {
    m.delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-first-death-reason").map(header_text))
}

/// One entry per command of the message (a message may carry a group of them).
pub fn describe(m: &BasicGetMessage) -> Vec<DeadLetter> {
    let reason = death_reason(m);
    let message_id = m
        .delivery
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string());
    let bytes = m.delivery.data.len();
    match decode_group(&m.delivery.data) {
        Ok(commands) => commands
            .iter()
            .map(|c| DeadLetter {
                message_id: message_id.clone(),
                death_reason: reason.clone(),
                api_call_id: Some(c.api_call_id.clone()),
                call_type: Some(c.payload.call_type()),
                merchant_id: Some(c.merchant_id.clone()),
                external_id: Some(c.external_id.clone()),
                accepted_at: Some(format_instant(&c.accepted_at)),
                bytes,
                error: None,
                replayable: true,
            })
            .collect(),
        Err(e) => vec![DeadLetter {
            message_id,
            death_reason: reason,
            api_call_id: None,
            call_type: None,
            merchant_id: None,
            external_id: None,
            accepted_at: None,
            bytes,
            error: Some(e.to_string()),
            replayable: false,
        }],
    }
}

fn format_instant(t: &DateTime<Utc>) -> String {
    crate::status::format_instant(t)
}

/// Takes up to `max` messages from the dead-letter queue (unacked: they return to the queue if
/// this process dies), so each is seen once per run.
async fn take(
    channel: &Channel,
    topology: &Topology,
    max: usize,
) -> Result<Vec<BasicGetMessage>, DlqError> {
    let mut messages = Vec::new();
    while messages.len() < max {
        let Some(m) = channel
            .basic_get(
                topology.dead_letter_queue().into(),
                BasicGetOptions { no_ack: false },
            )
            .await?
        else {
            break;
        };
        messages.push(m);
    }
    Ok(messages)
}

async fn give_back(m: &BasicGetMessage) -> Result<(), DlqError> {
    m.delivery
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await?;
    Ok(())
}

/// What a listing read.
#[derive(Debug, Clone)]
pub struct Listing {
    /// One entry per command, or per undecodable message.
    pub entries: Vec<DeadLetter>,
    /// How many messages were read.
    pub messages: usize,
}

/// What is in the dead-letter queue: the first `max` messages, each described. Every message
/// goes back, untouched.
pub async fn list(conn: &Connection, topology: &Topology, max: usize) -> Result<Listing, DlqError> {
    let channel = conn.create_channel().await?;
    let messages = take(&channel, topology, max).await?;
    let entries = messages.iter().flat_map(describe).collect();
    for m in &messages {
        give_back(m).await?;
    }
    let _ = channel.close(200, "listed".into()).await;
    Ok(Listing {
        entries,
        messages: messages.len(),
    })
}

/// Re-publishes the selected decodable messages to the command queue (confirmed), then
/// removes them from the dead-letter queue; returns what was replayed. A message carrying a
/// group of commands is replayed whole when any of them is selected. Undecodable messages
/// stay where they are. Safe to run twice: a message is removed only after its re-publish is
/// confirmed, and the workers' idempotency records make a command that runs twice count once.
pub async fn replay(
    conn: &Connection,
    topology: &Topology,
    selection: &Selection,
) -> Result<Vec<DeadLetter>, DlqError> {
    let channel = conn.create_channel().await?;
    let publisher = conn.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let messages = take(&channel, topology, MAX_TAKEN).await?;
    let mut replayed = Vec::new();
    let mut failure = None;
    for m in &messages {
        let selected = failure.is_none()
            && match decode_group(&m.delivery.data) {
                Ok(commands) => match selection {
                    Selection::All => true,
                    Selection::Ids(ids) => commands.iter().any(|c| ids.contains(&c.api_call_id)),
                },
                Err(_) => false,
            };
        if !selected {
            give_back(m).await?;
            continue;
        }
        match republish(&publisher, topology, m).await {
            Ok(()) => {
                m.delivery.ack(BasicAckOptions::default()).await?;
                replayed.extend(describe(m));
            }
            Err(e) => {
                give_back(m).await?;
                failure = Some(e);
            }
        }
    }
    let _ = channel.close(200, "replayed".into()).await;
    let _ = publisher.close(200, "replayed".into()).await;
    match failure {
        Some(e) => Err(e),
        None => Ok(replayed),
    }
}

async fn republish(
    publisher: &Channel,
    topology: &Topology,
    m: &BasicGetMessage,
) -> Result<(), DlqError> {
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
        return Err(DlqError::Refused);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{LongString, ShortString};

    #[test]
    fn a_death_reason_reads_as_its_text() {
        assert_eq!(
            header_text(&AMQPValue::LongString(LongString::from("rejected"))),
            "rejected"
        );
        assert_eq!(
            header_text(&AMQPValue::ShortString(ShortString::from("expired"))),
            "expired"
        );
    }
}
