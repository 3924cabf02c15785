//! Redis channels an ingress listens on: its `Prefer: wait` replies (`waiters`) and the
//! announcements of changed API keys (`api_keys`). One subscription each, kept forever.

use futures_util::StreamExt;
use std::time::Duration;

/// Subscribes to `channel` and hands each message's payload to `on_message`, resubscribing
/// with backoff whenever Redis goes away.
pub(crate) fn spawn(
    redis_url: String,
    channel: String,
    on_message: impl Fn(String) + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(100);
        loop {
            match listen(&redis_url, &channel, &on_message).await {
                Ok(()) => tracing::warn!(%channel, "subscription ended; resubscribing"),
                Err(e) => tracing::warn!(%channel, error = %e, "subscription failed; retrying"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    })
}

async fn listen(
    redis_url: &str,
    channel: &str,
    on_message: &impl Fn(String),
) -> redis::RedisResult<()> {
    let client = redis::Client::open(redis_url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    tracing::info!(%channel, "subscribed");
    let mut messages = pubsub.into_on_message();
    while let Some(msg) = messages.next().await {
        if let Ok(payload) = msg.get_payload::<String>() {
            on_message(payload);
        }
    }
    Ok(())
}
