//! Calls that share a round trip: requests arriving while up to `in_flight` batches are being
//! handled wait, and go together in the next batch. With nothing in flight a request goes at
//! once, alone, so a quiet engine pays no batching delay. The external-id lookups (one MySQL
//! read per batch) and the command publisher (one broker message per batch) are built on it.
//!
//! A caller waits in the queue at most its `queue_wait`: a batch stuck in flight (a broker
//! that stops confirming, a MySQL that stops answering) must not hold every later request.
//! Whether a call was handled is never in doubt: the caller gives up only on a call no batch
//! has taken ([`Unanswered::Expired`]); once taken, the call is answered by its batch, whose
//! handler bounds its own time.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Requests waiting for a batch; a full queue makes callers wait (up to their `queue_wait`).
const QUEUE: usize = 4096;

/// Where a queued call is: still waiting, taken into a batch, or given up by its caller.
const WAITING: u8 = 0;
const TAKEN: u8 = 1;
const GIVEN_UP: u8 = 2;

struct Call<Req, Resp> {
    request: Req,
    reply: oneshot::Sender<Resp>,
    /// [`WAITING`] until the batcher takes it or the caller gives up, whichever comes first.
    state: Arc<AtomicU8>,
}

/// Why a call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unanswered {
    /// It waited its whole `queue_wait` and no batch took it: it was not handled.
    #[error("no batch took the call within its wait")]
    Expired,
    /// The batcher has stopped, or its batch gave no answer.
    #[error("the batcher has stopped")]
    Stopped,
}

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

    /// The answer to `request`. A call no batch takes within `queue_wait` is given up
    /// ([`Unanswered::Expired`], and certainly not handled); a call taken is answered by its
    /// batch, however long that takes.
    pub async fn call(&self, request: Req, queue_wait: Duration) -> Result<Resp, Unanswered> {
        let until = tokio::time::Instant::now() + queue_wait;
        let (reply, mut answer) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(WAITING));
        let call = Call {
            request,
            reply,
            state: state.clone(),
        };
        match tokio::time::timeout_at(until, self.tx.send(call)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Unanswered::Stopped),
            Err(_) => return Err(Unanswered::Expired),
        }
        if let Ok(answered) = tokio::time::timeout_at(until, &mut answer).await {
            return answered.map_err(|_| Unanswered::Stopped);
        }
        match state.compare_exchange(WAITING, GIVEN_UP, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => Err(Unanswered::Expired),
            Err(_) => answer.await.map_err(|_| Unanswered::Stopped),
        }
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
        // Calls whose callers gave up waiting are dropped, unhandled, as their callers were told.
        calls.retain(|c| {
            c.state
                .compare_exchange(WAITING, TAKEN, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        });
        if calls.is_empty() {
            continue;
        }
        let (requests, replies): (Vec<_>, Vec<_>) =
            calls.into_iter().map(|c| (c.request, c.reply)).unzip();
        let answers = handle(requests);
        tokio::spawn(async move {
            for (reply, answer) in replies.into_iter().zip(answers.await) {
                let _ = reply.send(answer);
            }
            drop(permit);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;
    use tokio::time::{Instant, sleep};

    type Batches = Arc<Mutex<Vec<Vec<u32>>>>;

    fn batches_of(b: &Batches) -> Vec<Vec<u32>> {
        b.lock().expect("batches lock").clone()
    }

    /// A batcher whose handler records each batch it gets and takes `work` to answer.
    fn recording(in_flight: usize, work: Duration) -> (Batcher<u32, u32>, Batches) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let seen = batches.clone();
        let batcher = Batcher::start(8, in_flight, move |batch: Vec<u32>| {
            seen.lock().expect("batches lock").push(batch.clone());
            async move {
                sleep(work).await;
                batch.into_iter().map(|n| n * 10).collect()
            }
        });
        (batcher, batches)
    }

    /// Long enough for every call of these tests but the ones that test the wait.
    const LONG: Duration = Duration::from_secs(60);

    /// Sends `n` after `after` from now, waiting up to `wait` in the queue; its answer.
    fn call_waiting(
        b: &Batcher<u32, u32>,
        after: Duration,
        n: u32,
        wait: Duration,
    ) -> tokio::task::JoinHandle<Result<u32, Unanswered>> {
        let b = b.clone();
        tokio::spawn(async move {
            sleep(after).await;
            b.call(n, wait).await
        })
    }

    fn call_after(
        b: &Batcher<u32, u32>,
        after: Duration,
        n: u32,
    ) -> tokio::task::JoinHandle<Result<u32, Unanswered>> {
        call_waiting(b, after, n, LONG)
    }

    #[tokio::test(start_paused = true)]
    async fn requests_arriving_while_a_batch_is_in_flight_go_together_next() {
        let (b, batches) = recording(1, Duration::from_millis(10));
        let calls = [
            call_after(&b, Duration::ZERO, 1),
            call_after(&b, Duration::from_millis(2), 2),
            call_after(&b, Duration::from_millis(4), 3),
        ];
        for (call, want) in calls.into_iter().zip([10, 20, 30]) {
            assert_eq!(call.await.expect("call task"), Ok(want));
        }
        assert_eq!(batches_of(&batches), vec![vec![1], vec![2, 3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_request_goes_at_once() {
        let (b, batches) = recording(1, Duration::ZERO);
        let t = Instant::now();
        assert_eq!(b.call(7, LONG).await, Ok(70));
        assert_eq!(t.elapsed(), Duration::ZERO);
        assert_eq!(batches_of(&batches), vec![vec![7]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_holds_at_most_batch_max_requests() {
        let (b, batches) = recording(1, Duration::from_millis(10));
        let first = call_after(&b, Duration::ZERO, 100);
        let rest: Vec<_> = (0..10)
            .map(|n| call_after(&b, Duration::from_millis(1), n))
            .collect();
        assert_eq!(first.await.expect("call task"), Ok(1000));
        for (n, call) in rest.into_iter().enumerate() {
            assert_eq!(call.await.expect("call task"), Ok(n as u32 * 10));
        }
        let sizes: Vec<usize> = batches_of(&batches).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 8, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_permit_lets_a_batch_go_while_one_is_in_flight() {
        let (b, batches) = recording(2, Duration::from_millis(10));
        let t = Instant::now();
        let calls = [
            call_after(&b, Duration::ZERO, 1),
            call_after(&b, Duration::from_millis(2), 2),
        ];
        for call in calls {
            assert!(call.await.expect("call task").is_ok());
        }
        // Both went alone, the second without waiting for the first to be answered.
        assert_eq!(batches_of(&batches), vec![vec![1], vec![2]]);
        assert_eq!(t.elapsed(), Duration::from_millis(12));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_no_batch_takes_within_its_wait_expires_and_is_never_handled() {
        let (b, batches) = recording(1, Duration::from_secs(10));
        let stuck = call_after(&b, Duration::ZERO, 1);
        let behind = call_waiting(&b, Duration::from_millis(1), 2, Duration::from_secs(1));
        assert_eq!(behind.await.expect("call task"), Err(Unanswered::Expired));
        assert_eq!(stuck.await.expect("call task"), Ok(10));
        assert_eq!(b.call(3, LONG).await, Ok(30));
        assert_eq!(batches_of(&batches), vec![vec![1], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_taken_into_a_batch_is_answered_past_its_wait() {
        let (b, _) = recording(1, Duration::from_secs(10));
        assert_eq!(b.call(4, Duration::from_secs(1)).await, Ok(40));
    }
}
