//! Commands to the broker, grouped. RabbitMQ's cost is per message (a Raft entry in the
//! quorum queue, a delivery, a settlement), and it was the largest single consumer of CPU
//! after the ingress itself. The commands of requests that arrive while earlier publishes
//! await their confirms now travel together in one persistent message (a JSON array, see
//! `shared::messages::encode_group`), and each request still answers only once the broker
//! has confirmed the message holding its command. With no publish in flight a command goes
//! out at once, alone, so a quiet engine pays no grouping delay.

use shared::amqp::{PublishError, Publisher};
use shared::messages::{Command, encode_group};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Commands in one message at most (the worker's batch is 32 commands by default).
const GROUP_MAX: usize = 32;
/// Commands waiting for a message; a full queue makes requests wait.
const QUEUE: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    #[error(transparent)]
    Publish(Arc<PublishError>),
    #[error("the command publisher has stopped")]
    Stopped,
}

impl SendError {
    /// The command may be queued (a lost confirm): a retry must re-send this very call.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            SendError::Publish(e) => e.is_ambiguous(),
            // Stopped mid-publish cannot be told from stopped before it.
            SendError::Stopped => true,
        }
    }
}

struct Pending {
    api_call_id: String,
    encoded: Vec<u8>,
    confirmed: oneshot::Sender<Result<(), SendError>>,
}

#[derive(Clone)]
pub struct Commands {
    tx: mpsc::Sender<Pending>,
}

impl Commands {
    /// `in_flight`: messages awaiting their confirm at once; more commands wait and are
    /// grouped.
    pub fn start(publisher: Publisher, queue: String, in_flight: usize) -> Commands {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(publisher, queue, in_flight.max(1), rx));
        Commands { tx }
    }

    /// Publishes the command; `Ok` once the broker has confirmed the message holding it.
    pub async fn send(&self, command: &Command) -> Result<(), SendError> {
        let (confirmed, rx) = oneshot::channel();
        let pending = Pending {
            api_call_id: command.api_call_id.clone(),
            encoded: command.encode(),
            confirmed,
        };
        self.tx
            .send(pending)
            .await
            .map_err(|_| SendError::Stopped)?;
        rx.await.map_err(|_| SendError::Stopped)?
    }
}

async fn run(
    publisher: Publisher,
    queue: String,
    in_flight: usize,
    mut rx: mpsc::Receiver<Pending>,
) {
    let permits = Arc::new(Semaphore::new(in_flight));
    loop {
        // Waiting for a permit first lets commands gather while the messages in flight await
        // their confirms.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut group = Vec::with_capacity(GROUP_MAX);
        if rx.recv_many(&mut group, GROUP_MAX).await == 0 {
            return;
        }
        let publisher = publisher.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            publish_group(&publisher, &queue, group).await;
            drop(permit);
        });
    }
}

async fn publish_group(publisher: &Publisher, queue: &str, group: Vec<Pending>) {
    metrics::histogram!("xyz_commands_per_message").record(group.len() as f64);
    let (senders, encoded): (Vec<_>, Vec<_>) = group
        .into_iter()
        .map(|p| ((p.api_call_id, p.confirmed), p.encoded))
        .unzip();
    // The message is named after its first command's call.
    let message_id = senders.first().map(|(id, _)| id.as_str()).unwrap_or("");
    let result = publisher
        .publish(queue, message_id, &encode_group(&encoded))
        .await
        .map_err(|e| SendError::Publish(Arc::new(e)));
    for (_, confirmed) in senders {
        let _ = confirmed.send(result.clone());
    }
}
