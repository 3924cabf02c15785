//! Calls that share a round trip: requests arriving while up to `in_flight` batches are being
//! handled wait, and go together in the next batch. With nothing in flight a request goes at
//! once, alone, so a quiet engine pays no batching delay. The external-id lookups (one MySQL
//! read per batch) and the command publisher (one broker message per batch) are built on it.

use std::future::Future;
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Requests waiting for a batch; a full queue makes callers wait.
const QUEUE: usize = 4096;

type Call<Req, Resp> = (Req, oneshot::Sender<Resp>);

pub struct Batcher<Req, Resp> {
    tx: mpsc::Sender<Call<Req, Resp>>,
}

impl<Req, Resp> Clone for Batcher<Req, Resp> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<Req: Send + 'static, Resp: Send + 'static> Batcher<Req, Resp> {
    /// `handle` gets up to `batch_max` requests and answers each, in order.
    pub fn start<F, Fut>(batch_max: usize, in_flight: usize, handle: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<Resp>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(rx, batch_max.max(1), in_flight.max(1), handle));
        Batcher { tx }
    }

    /// The answer to `request`; `None` when the batcher has stopped or gave no answer.
    pub async fn call(&self, request: Req) -> Option<Resp> {
        let (reply, answer) = oneshot::channel();
        self.tx.send((request, reply)).await.ok()?;
        answer.await.ok()
    }
}

async fn run<Req, Resp, F, Fut>(
    mut rx: mpsc::Receiver<Call<Req, Resp>>,
    batch_max: usize,
    in_flight: usize,
    handle: F,
) where
    Req: Send + 'static,
    Resp: Send + 'static,
    F: Fn(Vec<Req>) -> Fut,
    Fut: Future<Output = Vec<Resp>> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(in_flight));
    loop {
        // Waiting for a permit first lets requests gather while the batches in flight run.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut calls = Vec::with_capacity(batch_max);
        if rx.recv_many(&mut calls, batch_max).await == 0 {
            return;
        }
        let (requests, replies): (Vec<_>, Vec<_>) = calls.into_iter().unzip();
        let answers = handle(requests);
        tokio::spawn(async move {
            for (reply, answer) in replies.into_iter().zip(answers.await) {
                let _ = reply.send(answer);
            }
            drop(permit);
        });
    }
}
