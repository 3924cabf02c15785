//! Commands to the broker, grouped. RabbitMQ's cost is per message (a Raft entry in the
//! quorum queue, a delivery, a settlement), and it was the largest single consumer of CPU
//! after the ingress itself. The commands of requests that arrive while earlier publishes
//! await their confirms now travel together in one persistent message (a JSON array, see
//! `shared::messages::encode_group`), and each request still answers only once the broker
//! has confirmed the message holding its command. With no publish in flight a command goes
//! out at once, alone, so a quiet engine pays no grouping delay.
//!
//! Every wait is bounded by the confirm timeout: a command waits that long at most for its
//! message to leave (a publish in flight is itself bounded by it, `shared::amqp`), so a
//! broker that stops confirming answers each request 503 within twice the timeout.

use crate::batcher::{Batcher, Unanswered};
use shared::amqp::{PublishError, Publisher};
use shared::messages::{Command, encode_group};
use std::sync::Arc;
use std::time::Duration;

/// Commands in one message at most (the worker's batch is 32 commands by default).
const GROUP_MAX: usize = 32;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Publish(Arc<PublishError>),
    #[error("the command publisher has stopped")]
    Stopped,
    #[error("no message took the command within {0:?}")]
    Expired(Duration),
}

impl SendError {
    /// The command may be queued (a lost confirm): a retry must re-send this very call.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            SendError::Publish(e) => e.is_ambiguous(),
            // Stopped mid-publish cannot be told from stopped before it.
            SendError::Stopped => true,
            // Never handed to a publish.
            SendError::Expired(_) => false,
        }
    }
}

/// A command's call id (to name the message) and its encoded form.
type Encoded = (String, Vec<u8>);

#[derive(Clone)]
pub struct Commands {
    batcher: Batcher<Encoded, Result<(), SendError>>,
    queue_wait: Duration,
}

impl Commands {
    /// `in_flight`: messages awaiting their confirm at once; more commands wait and are
    /// grouped, each at most `queue_wait`.
    pub fn start(
        publisher: Publisher,
        queue: String,
        in_flight: usize,
        queue_wait: Duration,
    ) -> Commands {
        let queue: Arc<str> = queue.into();
        let batcher = Batcher::start(GROUP_MAX, in_flight, move |group: Vec<Encoded>| {
            let publisher = publisher.clone();
            let queue = queue.clone();
            async move {
                let n = group.len();
                let result = publish_group(&publisher, &queue, group).await;
                vec![result; n]
            }
        });
        Commands {
            batcher,
            queue_wait,
        }
    }

    /// Publishes the command; `Ok` once the broker has confirmed the message holding it.
    pub async fn send(&self, command: &Command) -> Result<(), SendError> {
        match self
            .batcher
            .call(
                (command.api_call_id.clone(), command.encode()),
                self.queue_wait,
            )
            .await
        {
            Ok(sent) => sent,
            Err(Unanswered::Expired) => Err(SendError::Expired(self.queue_wait)),
            Err(Unanswered::Stopped) => Err(SendError::Stopped),
        }
    }
}

async fn publish_group(
    publisher: &Publisher,
    queue: &str,
    group: Vec<Encoded>,
) -> Result<(), SendError> {
    metrics::histogram!("xyz_commands_per_message").record(group.len() as f64);
    // The message is named after its first command's call.
    let message_id = group.first().map(|(id, _)| id.clone()).unwrap_or_default();
    let body = encode_group(group.into_iter().map(|(_, encoded)| encoded).collect());
    publisher
        .publish(queue, &message_id, &body)
        .await
        .map_err(|e| SendError::Publish(Arc::new(e)))
}
