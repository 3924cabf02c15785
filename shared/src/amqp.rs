//! RabbitMQ: the one definition of the topology, connections, and a confirmed publisher that
//! reconnects by itself.
//!
//! `AMQP_URL` may list the nodes of a cluster (`crate::nodes`). Every connection is opened on
//! the first node that takes it; one that dies is replaced on the next node of the list, so a
//! dead node costs a reconnect, and a node back in service is used again when its turn comes.
//! A confirm on a quorum queue comes once a quorum of nodes holds the message, whichever
//! node the publisher is connected to: a confirmed publish is safe through the loss of any
//! minority, and a publish whose confirm is lost with its node is ambiguous, never `Ok`.

use crate::nodes::Nodes;
/// A broker connection, as the callers of [`connect`] hold it.
pub use lapin::Connection;
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ConnectionProperties, ErrorKind, ExchangeKind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The broker's safety net, not the poison mechanism: the worker dead-letters what it cannot
/// decode or apply itself (`worker/src/unit.rs`, `Decision::Poison`). RabbitMQ 3.x counts every
/// return against the limit (a closed channel, a killed worker's prefetch, a requeueing nack),
/// so a low limit dead-letters valid commands after a few worker restarts; 1000 is only
/// reached by a message that kills every worker it reaches.
pub(crate) const DELIVERY_LIMIT: i64 = 1000;

/// What `Topology::declare` found the command queue to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandQueue {
    /// Declared with the arguments in this file.
    Current,
    /// Declared by an earlier release with another `x-delivery-limit` (theirs was 5). Quorum-queue
    /// arguments are fixed at declaration and a policy cannot raise them (3.x takes the lower
    /// of policy and argument), so the queue is used as it is until it is recreated
    /// (docs/operations.md, "Dead letters").
    OtherDeliveryLimit,
}

/// Queue and exchange names and arguments, derived from one prefix so tests can run on their
/// own names side by side.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
}

/// One queue argument: (name, value as it appears in JSON definitions).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ArgValue {
    Str(String),
    Int(i64),
}

impl Topology {
    pub fn new(prefix: &str) -> Topology {
        Topology {
            prefix: prefix.to_owned(),
        }
    }

    pub fn command_queue(&self) -> String {
        format!("{}.commands", self.prefix)
    }

    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    pub fn dead_letter_queue(&self) -> String {
        format!("{}.commands.dlq", self.prefix)
    }

    /// Arguments of the command queue: quorum, explicit delivery limit, reject-publish on
    /// overflow (needed by at-least-once dead-lettering), and the dead-letter target.
    pub(crate) fn command_queue_args(&self) -> Vec<(&'static str, ArgValue)> {
        vec![
            ("x-queue-type", ArgValue::Str("quorum".into())),
            ("x-delivery-limit", ArgValue::Int(DELIVERY_LIMIT)),
            ("x-overflow", ArgValue::Str("reject-publish".into())),
            (
                "x-dead-letter-exchange",
                ArgValue::Str(self.dead_letter_exchange()),
            ),
            (
                "x-dead-letter-routing-key",
                ArgValue::Str(self.dead_letter_queue()),
            ),
            (
                "x-dead-letter-strategy",
                ArgValue::Str("at-least-once".into()),
            ),
        ]
    }

    pub(crate) fn dead_letter_queue_args(&self) -> Vec<(&'static str, ArgValue)> {
        vec![("x-queue-type", ArgValue::Str("quorum".into()))]
    }

    fn table(args: Vec<(&'static str, ArgValue)>) -> FieldTable {
        let mut t = FieldTable::default();
        for (k, v) in args {
            let value = match v {
                ArgValue::Str(s) => AMQPValue::LongString(LongString::from(s)),
                ArgValue::Int(i) => AMQPValue::LongLongInt(i),
            };
            t.insert(ShortString::from(k), value);
        }
        t
    }

    /// Declares everything; idempotent, so every process does it at start-up. On channels of
    /// its own: a queue declared earlier with another delivery limit refuses the declaration
    /// with 406, which closes the channel, and is then accepted as it is.
    pub async fn declare(&self, conn: &Connection) -> lapin::Result<CommandQueue> {
        let channel = conn.create_channel().await?;
        match self.declare_on(&channel).await {
            Ok(()) => {
                let _ = channel.close(200, "declared".into()).await;
                Ok(CommandQueue::Current)
            }
            Err(e) if is_other_delivery_limit(&e) => {
                let channel = conn.create_channel().await?;
                channel
                    .queue_declare(
                        self.command_queue().into(),
                        QueueDeclareOptions {
                            passive: true,
                            ..QueueDeclareOptions::default()
                        },
                        FieldTable::default(),
                    )
                    .await?;
                let _ = channel.close(200, "declared".into()).await;
                tracing::warn!(
                    queue = %self.command_queue(),
                    error = %e,
                    "the command queue has another delivery limit than {DELIVERY_LIMIT}: valid commands can be dead-lettered after worker restarts until it is recreated"
                );
                Ok(CommandQueue::OtherDeliveryLimit)
            }
            Err(e) => Err(e),
        }
    }

    async fn declare_on(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.dead_letter_queue().into(),
                durable,
                Self::table(self.dead_letter_queue_args()),
            )
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue().into(),
                self.dead_letter_exchange().into(),
                self.dead_letter_queue().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(
                self.command_queue().into(),
                durable,
                Self::table(self.command_queue_args()),
            )
            .await?;
        Ok(())
    }
}

/// Whether `e` is the broker refusing a queue declaration because the queue exists with
/// another `x-delivery-limit` (406 PRECONDITION_FAILED names the argument).
fn is_other_delivery_limit(e: &lapin::Error) -> bool {
    match e.kind() {
        ErrorKind::ProtocolError(amqp) => {
            *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
                && amqp
                    .get_message()
                    .as_str()
                    .contains("inequivalent arg 'x-delivery-limit'")
        }
        _ => false,
    }
}

/// A queue as the broker counts it now.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueueCounts {
    pub queue: String,
    /// Messages ready for delivery (the broker does not count those delivered and unacked).
    pub messages: u32,
    pub consumers: u32,
}

/// The broker's counts of `queue` (a passive declaration, on a channel of its own: a missing
/// queue closes the channel that asked).
pub async fn queue_counts(conn: &Connection, queue: &str) -> lapin::Result<QueueCounts> {
    let channel = conn.create_channel().await?;
    let q = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = channel.close(200, "counted".into()).await;
    Ok(QueueCounts {
        queue: queue.to_owned(),
        messages: q.message_count(),
        consumers: q.consumer_count(),
    })
}

pub async fn connect(url: &str, name: &str) -> lapin::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
    Connection::connect(url, props).await
}

/// How long one node may take to open a connection (with what follows on it: declarations,
/// a channel, a consumer) before the next node is tried. Past a refused connection, which is
/// immediate, this is what a node that vanished without a reset costs.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection on the first node of `nodes` that takes one, trying them in turn from
/// `start`; with that node's index.
pub async fn connect_any(
    nodes: &Nodes,
    start: usize,
    name: &str,
) -> lapin::Result<(Connection, usize)> {
    nodes
        .first_answering(start, NODE_TIMEOUT, "RabbitMQ", |node| {
            connect(nodes.url(node), name)
        })
        .await
}

impl PublishError {
    /// The `result` label of `xyz_publish_total`.
    fn label(&self) -> &'static str {
        match self {
            PublishError::NotConnected => "not_connected",
            PublishError::Blocked => "blocked",
            PublishError::Broker(_) => "error",
            PublishError::Timeout => "timeout",
            PublishError::Nacked => "nack",
            PublishError::Returned => "returned",
        }
    }

    /// Whether the message may have reached the queue although the publish failed (the
    /// confirm was lost with the connection, or never came; a message not yet written when
    /// its publish timed out still goes once the broker lifts its alarm).
    pub fn is_ambiguous(&self) -> bool {
        matches!(self, PublishError::Timeout | PublishError::Broker(_))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to the broker")]
    NotConnected,
    #[error("the broker blocks publishers (a memory or disk alarm)")]
    Blocked,
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker did not confirm in time")]
    Timeout,
    #[error("the broker refused the message")]
    Nacked,
    #[error("the message was unroutable")]
    Returned,
}

/// A publisher-confirms channel shared by every request. Publishes are pipelined on it (many
/// in flight, each awaiting its own confirm). When the broker goes away the channel is dropped
/// and a background task reconnects with backoff; meanwhile publishes fail fast. So do they
/// while the broker blocks the connection (`connection.blocked`: a memory or disk alarm);
/// lapin then holds every frame, so a publish begun before the notice never completes, and
/// the confirm timeout bounds the whole publish, not only the wait for its confirm.
#[derive(Clone)]
pub struct Publisher {
    inner: Arc<PublisherInner>,
}

struct PublisherInner {
    nodes: Nodes,
    /// The node of the current (or last) connection.
    node: AtomicUsize,
    name: String,
    topology: Topology,
    channel: Mutex<Option<(Connection, Channel)>>,
    broken: Notify,
    confirm_timeout: Duration,
}

impl Publisher {
    /// Starts the publisher; it connects in the background, so a broker that is down at
    /// start-up delays nothing but publishes.
    pub fn start(
        nodes: &Nodes,
        name: &str,
        topology: Topology,
        confirm_timeout: Duration,
    ) -> Publisher {
        let p = Publisher {
            inner: Arc::new(PublisherInner {
                nodes: nodes.clone(),
                node: AtomicUsize::new(0),
                name: name.to_owned(),
                topology,
                channel: Mutex::new(None),
                broken: Notify::new(),
                confirm_timeout,
            }),
        };
        let weak = Arc::downgrade(&p.inner);
        tokio::spawn(async move { reconnect_loop(weak).await });
        p
    }

    /// The queues this publisher publishes to.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// A connection of its own to the same broker (the publisher's node first), for an
    /// operator's look at the queues (never shared with the publishes, whose channel a
    /// failed look must not close).
    pub async fn connect_aside(&self, name: &str) -> lapin::Result<Connection> {
        let node = self.inner.node.load(Ordering::Relaxed);
        connect_any(&self.inner.nodes, node, name)
            .await
            .map(|(conn, _)| conn)
    }

    pub fn is_connected(&self) -> bool {
        !matches!(self.current(), Err(PublishError::NotConnected))
    }

    fn current(&self) -> Result<Channel, PublishError> {
        let guard = self.inner.channel.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some((conn, ch)) if conn.status().connected() && ch.status().connected() => {
                if conn.status().blocked() {
                    Err(PublishError::Blocked)
                } else {
                    Ok(ch.clone())
                }
            }
            _ => Err(PublishError::NotConnected),
        }
    }

    fn mark_broken(&self) {
        let mut guard = self.inner.channel.lock().unwrap_or_else(|e| e.into_inner());
        *guard = None;
        drop(guard);
        self.inner.broken.notify_one();
    }

    /// Publishes one persistent, mandatory message to `queue` and waits for its confirm.
    pub async fn publish(
        &self,
        queue: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<(), PublishError> {
        let channel = match self.current() {
            Ok(channel) => channel,
            Err(e) => {
                if matches!(e, PublishError::NotConnected) {
                    self.inner.broken.notify_one();
                }
                metrics::counter!("xyz_publish_total", "result" => e.label()).increment(1);
                return Err(e);
            }
        };
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type(ShortString::from("application/json"))
            .with_message_id(ShortString::from(message_id));
        let publish = async {
            let confirm = channel
                .basic_publish(
                    ShortString::from(""),
                    ShortString::from(queue),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    props,
                )
                .await?;
            let confirmation = confirm.await?;
            if !confirmation.is_ack() {
                return Err(PublishError::Nacked);
            }
            // An unroutable mandatory message is returned and still acked.
            if confirmation.take_message().is_some() {
                return Err(PublishError::Returned);
            }
            Ok(())
        };
        let result = tokio::time::timeout(self.inner.confirm_timeout, publish)
            .await
            .unwrap_or(Err(PublishError::Timeout));
        let label = result.as_ref().map_or_else(PublishError::label, |()| "ok");
        metrics::counter!("xyz_publish_total", "result" => label).increment(1);
        // A refusal retires the channel too: a channel that first published to a quorum queue
        // while its leader's node was just killed keeps refusing (RabbitMQ 3.10) after
        // another leader is elected, until the old node returns; a new channel publishes at
        // once. Measured with scripts/cluster_faults.sh: every publish refused for 3 minutes.
        if let Err(PublishError::Broker(_) | PublishError::Nacked) = &result {
            self.mark_broken();
        }
        result
    }
}

/// Keeps the publisher connected: on a failure, the nodes are tried in turn from the one after
/// the node that failed, with a backoff between rounds in which none answered.
async fn reconnect_loop(weak: std::sync::Weak<PublisherInner>) {
    let mut delay = Duration::from_millis(100);
    let mut start = 0;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let healthy = {
            let guard = inner.channel.lock().unwrap_or_else(|e| e.into_inner());
            guard
                .as_ref()
                .is_some_and(|(c, ch)| c.status().connected() && ch.status().connected())
        };
        if healthy {
            delay = Duration::from_millis(100);
            // Wake on a reported failure, or check the status now and then.
            let _ = tokio::time::timeout(Duration::from_secs(1), inner.broken.notified()).await;
            continue;
        }
        let opened = inner
            .nodes
            .first_answering(start, NODE_TIMEOUT, "RabbitMQ", |node| {
                open_confirm_channel(inner.nodes.url(node), &inner.name, &inner.topology)
            })
            .await;
        match opened {
            Ok((pair, node)) => {
                tracing::info!(name = %inner.name, node, host = %inner.nodes.label(node), "connected to RabbitMQ");
                inner.node.store(node, Ordering::Relaxed);
                start = node + 1;
                *inner.channel.lock().unwrap_or_else(|e| e.into_inner()) = Some(pair);
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "RabbitMQ connection failed");
                drop(inner);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn open_confirm_channel(
    url: &str,
    name: &str,
    topology: &Topology,
) -> lapin::Result<(Connection, Channel)> {
    let conn = connect(url, name).await?;
    topology.declare(&conn).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((conn, channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rabbitmq/definitions.json` (what the compose file's broker loads) must declare exactly
    /// what the processes declare, or the second declaration closes the channel with 406.
    #[test]
    fn committed_definitions_match_the_topology_in_code() {
        let defs: serde_json::Value =
            serde_json::from_str(include_str!("../../rabbitmq/definitions.json"))
                .expect("valid JSON");
        let t = Topology::new("xyz");
        let queue = |name: &str| {
            defs["queues"]
                .as_array()
                .expect("queues")
                .iter()
                .find(|q| q["name"] == name)
                .unwrap_or_else(|| panic!("queue {name} missing"))
                .clone()
        };
        let as_json = |args: Vec<(&'static str, ArgValue)>| {
            let mut m = serde_json::Map::new();
            for (k, v) in args {
                let v = match v {
                    ArgValue::Str(s) => serde_json::Value::String(s),
                    ArgValue::Int(i) => serde_json::Value::from(i),
                };
                m.insert(k.to_owned(), v);
            }
            serde_json::Value::Object(m)
        };
        let commands = queue(&t.command_queue());
        assert_eq!(commands["durable"], true);
        assert_eq!(commands["arguments"], as_json(t.command_queue_args()));
        let dlq = queue(&t.dead_letter_queue());
        assert_eq!(dlq["durable"], true);
        assert_eq!(dlq["arguments"], as_json(t.dead_letter_queue_args()));
        assert_eq!(defs["queues"].as_array().map(Vec::len), Some(2));
        let exchange = &defs["exchanges"][0];
        assert_eq!(exchange["name"], t.dead_letter_exchange());
        assert_eq!(exchange["type"], "direct");
        let binding = &defs["bindings"][0];
        assert_eq!(binding["source"], t.dead_letter_exchange());
        assert_eq!(binding["destination"], t.dead_letter_queue());
        assert_eq!(binding["routing_key"], t.dead_letter_queue());
    }

    #[test]
    fn only_a_refusal_naming_the_delivery_limit_is_an_older_command_queue() {
        use lapin::protocol::AMQPError;
        let refusal = |kind: AMQPSoftError, message: &str| {
            lapin::Error::from(ErrorKind::ProtocolError(AMQPError::new(
                AMQPErrorKind::Soft(kind),
                message.into(),
            )))
        };
        let older = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue \
                     'xyz.commands' in vhost '/': received the value '1000' of type 'long' but \
                     current is the value '5' of type 'long'";
        assert!(is_other_delivery_limit(&refusal(
            AMQPSoftError::PRECONDITIONFAILED,
            older
        )));
        let other_arg = older.replace("x-delivery-limit", "x-overflow");
        assert!(!is_other_delivery_limit(&refusal(
            AMQPSoftError::PRECONDITIONFAILED,
            &other_arg
        )));
        assert!(!is_other_delivery_limit(&refusal(
            AMQPSoftError::ACCESSREFUSED,
            older
        )));
    }

    #[test]
    fn names_follow_the_prefix() {
        let t = Topology::new("xyz");
        assert_eq!(t.command_queue(), "xyz.commands");
        assert_eq!(t.dead_letter_queue(), "xyz.commands.dlq");
        assert_eq!(t.dead_letter_exchange(), "xyz.dlx");
    }
}
