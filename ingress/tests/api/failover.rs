//! `AMQP_URL` and `DATABASE_URL` as lists of nodes: the publisher, the consumers and the pool
//! skip a node that is down and move to the next when theirs dies. The "nodes" are the real
//! local RabbitMQ and MariaDB, directly or through a TCP proxy of the test's own that it can
//! take down, freeze and bring back (the shared services themselves are never touched).

use crate::helpers::*;
use shared::amqp::{Publisher, Topology};
use shared::nodes::Nodes;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

const RABBITMQ: &str = "127.0.0.1:5672";
const MARIADB: &str = "127.0.0.1:3306";
/// Nothing listens there: connections are refused at once.
const DEAD: &str = "127.0.0.1:1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    /// Connections stay open and new ones are accepted, but no byte goes through: a node that
    /// stopped answering.
    Frozen,
    /// Every connection is closed, new ones as soon as they are accepted: a dead node.
    Down,
}

/// A node that can die: a TCP proxy to a real service on a port of its own. Dropped, it is
/// gone for good (its port refuses).
struct Proxy {
    port: u16,
    link: watch::Sender<Link>,
    /// Connections forwarded so far.
    forwarded: Arc<AtomicUsize>,
}

impl Proxy {
    async fn to(target: &'static str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (link, state) = watch::channel(Link::Up);
        let forwarded = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept(listener, target, state, forwarded.clone()));
        Proxy {
            port,
            link,
            forwarded,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    fn forwarded(&self) -> usize {
        self.forwarded.load(Ordering::SeqCst)
    }
}

async fn accept(
    listener: TcpListener,
    target: &'static str,
    mut state: watch::Receiver<Link>,
    forwarded: Arc<AtomicUsize>,
) {
    loop {
        let client = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => client,
                Err(_) => return,
            },
            changed = state.changed() => {
                // Err: the proxy was dropped.
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        if *state.borrow() == Link::Down {
            continue;
        }
        let Ok(server) = TcpStream::connect(target).await else {
            continue;
        };
        forwarded.fetch_add(1, Ordering::SeqCst);
        let (client_read, client_write) = client.into_split();
        let (server_read, server_write) = server.into_split();
        tokio::spawn(pump(client_read, server_write, state.clone()));
        tokio::spawn(pump(server_read, client_write, state.clone()));
    }
}

/// Copies one direction while the link is up, holds the bytes while it is frozen, and closes
/// when it goes down (or the proxy is dropped).
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut state: watch::Receiver<Link>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = state.wait_for(|l| *l == Link::Down) => return,
        };
        match state.wait_for(|l| *l != Link::Frozen).await {
            Ok(l) if *l == Link::Up => {}
            _ => return,
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn amqp_url(addr: &str) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

fn nodes(urls: &[String]) -> Nodes {
    urls.join(",").parse().expect("a list of URLs")
}

/// Waits until `f` gives `Some`, for up to `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(Instant::now() < deadline, "{what} within {secs} s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A publisher on queues of its own, over the nodes at `urls`.
fn publisher_on(urls: &[String]) -> (Publisher, Topology) {
    let topology = Topology::new(&fresh_prefix());
    let publisher = Publisher::start(
        &nodes(urls),
        "test-failover",
        topology.clone(),
        Duration::from_secs(5),
    );
    (publisher, topology)
}

/// A publish that the broker confirmed, retried while the publisher reconnects.
async fn published(publisher: &Publisher, queue: &str, id: &str) {
    eventually(20, "a confirmed publish", || async {
        publisher.publish(queue, id, b"[]").await.ok()
    })
    .await
}

/// A pool's answer, retried while the pool moves to another node.
async fn answered(pool: &sqlx::MySqlPool) {
    eventually(20, "an answer from MySQL", || async {
        let answer = tokio::time::timeout(Duration::from_secs(5), shared::db::ping(pool)).await;
        matches!(answer, Ok(Ok(()))).then_some(())
    })
    .await
}

#[tokio::test]
async fn the_publisher_skips_a_dead_first_node_and_publishes_with_a_confirm() {
    let (publisher, topology) = publisher_on(&[amqp_url(DEAD), amqp_url(RABBITMQ)]);
    published(&publisher, &topology.command_queue(), "first").await;
    let conn = publisher
        .connect_aside("test-failover-look")
        .await
        .expect("a node takes it");
    let counts = eventually(10, "the message in the queue", || async {
        let counts = shared::amqp::queue_counts(&conn, &topology.command_queue())
            .await
            .ok()?;
        (counts.messages == 1).then_some(counts)
    })
    .await;
    assert_eq!(counts.messages, 1);
    let _ = conn.close(200, "bye".into()).await;
    delete_queues(&topology.prefix).await;
}

#[tokio::test]
async fn a_publish_in_flight_when_its_node_dies_is_ambiguous_and_the_next_goes_to_the_next_node() {
    let first = Proxy::to(RABBITMQ).await;
    let (publisher, topology) = publisher_on(&[amqp_url(&first.addr()), amqp_url(RABBITMQ)]);
    let queue = topology.command_queue();
    published(&publisher, &queue, "through-the-first").await;
    assert_eq!(first.forwarded(), 1, "connected through the first node");

    // The confirm cannot come back: the publish is in flight when the node dies.
    first.set(Link::Frozen);
    let in_flight = tokio::spawn({
        let (publisher, queue) = (publisher.clone(), queue.clone());
        async move { publisher.publish(&queue, "in-flight", b"[]").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.set(Link::Down);
    let started = Instant::now();
    match in_flight.await.expect("the publish task") {
        Ok(()) => panic!("a publish whose confirm never came was Ok"),
        Err(e) => assert!(e.is_ambiguous(), "{e:?} must be ambiguous"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "bounded by the confirm timeout"
    );

    published(&publisher, &queue, "through-the-second").await;
    assert_eq!(first.forwarded(), 1, "not through the dead node");
    delete_queues(&topology.prefix).await;
}

#[tokio::test]
async fn the_publisher_goes_round_the_list_and_back_to_a_node_that_returns() {
    let (a, b) = (Proxy::to(RABBITMQ).await, Proxy::to(RABBITMQ).await);
    let (publisher, topology) = publisher_on(&[amqp_url(&a.addr()), amqp_url(&b.addr())]);
    let queue = topology.command_queue();
    published(&publisher, &queue, "on-a").await;
    assert_eq!((a.forwarded(), b.forwarded()), (1, 0));

    a.set(Link::Down);
    published(&publisher, &queue, "on-b").await;
    assert_eq!(b.forwarded(), 1, "moved to b");

    // a is back, b dies: no restart needed to use a again.
    a.set(Link::Up);
    let on_a = a.forwarded();
    b.set(Link::Down);
    published(&publisher, &queue, "on-a-again").await;
    assert!(a.forwarded() > on_a, "back on a");
    delete_queues(&topology.prefix).await;
}

/// A channel of RabbitMQ 3.10 that published to a quorum queue just as its leader's node died
/// keeps refusing after another leader is elected; a new one publishes. The refusal here
/// comes from a queue that takes nothing (`x-max-length` 0, `reject-publish`).
#[tokio::test]
async fn a_refused_publish_retires_its_channel_and_the_next_publish_opens_a_new_one() {
    use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::{AMQPValue, FieldTable, LongString};
    let node = Proxy::to(RABBITMQ).await;
    let (publisher, topology) = publisher_on(&[amqp_url(&node.addr())]);
    let queue = topology.command_queue();
    published(&publisher, &queue, "first").await;
    assert_eq!(node.forwarded(), 1);

    let full = format!("{}.full", topology.prefix);
    let conn = shared::amqp::connect(&amqp_url(RABBITMQ), "test-failover-full")
        .await
        .expect("amqp");
    let ch = conn.create_channel().await.expect("channel");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(0));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString(LongString::from("reject-publish")),
    );
    ch.queue_declare(full.as_str().into(), QueueDeclareOptions::default(), args)
        .await
        .expect("a queue that refuses");

    match publisher.publish(&full, "refused", b"[]").await {
        Err(e @ shared::amqp::PublishError::Nacked) => assert!(!e.is_ambiguous()),
        other => panic!("{other:?}: the broker must refuse"),
    }
    published(&publisher, &queue, "after").await;
    assert_eq!(
        node.forwarded(),
        2,
        "the publish after the refusal went on a new connection"
    );

    let _ = ch
        .queue_delete(full.as_str().into(), QueueDeleteOptions::default())
        .await;
    let _ = conn.close(200, "bye".into()).await;
    delete_queues(&topology.prefix).await;
}

#[tokio::test]
async fn the_pool_skips_a_dead_first_node() {
    let list = nodes(&[
        format!("mysql://root@{DEAD}"),
        format!("mysql://root@{MARIADB}"),
    ]);
    let pool = shared::db::connect(&list, 2).await.expect("pool");
    answered(&pool).await;
    assert_eq!(pool.connect_options().get_port(), 3306);
    for _ in 0..10 {
        shared::db::ping(&pool).await.expect("every query answered");
    }
}

#[tokio::test]
async fn the_pool_moves_round_the_list_when_its_node_dies_and_back_to_a_node_that_returns() {
    let (a, b) = (Proxy::to(MARIADB).await, Proxy::to(MARIADB).await);
    let list = nodes(&[
        format!("mysql://root@{}", a.addr()),
        format!("mysql://root@{}", b.addr()),
    ]);
    let pool = shared::db::connect(&list, 4).await.expect("pool");
    answered(&pool).await;
    assert_eq!(pool.connect_options().get_port(), a.port);

    a.set(Link::Down);
    answered(&pool).await;
    assert_eq!(pool.connect_options().get_port(), b.port, "moved to b");
    let on_a = a.forwarded();
    for _ in 0..10 {
        shared::db::ping(&pool)
            .await
            .expect("every query answered on b");
    }

    a.set(Link::Up);
    b.set(Link::Down);
    eventually(20, "the pool back on a", || async {
        (pool.connect_options().get_port() == a.port).then_some(())
    })
    .await;
    answered(&pool).await;
    assert!(a.forwarded() > on_a, "queries through a again");
    for _ in 0..10 {
        shared::db::ping(&pool)
            .await
            .expect("every query answered on a");
    }
}

#[tokio::test]
async fn the_pool_leaves_a_node_that_stops_answering() {
    let frozen = Proxy::to(MARIADB).await;
    let list = nodes(&[
        format!("mysql://root@{}", frozen.addr()),
        format!("mysql://root@{MARIADB}"),
    ]);
    let pool = shared::db::connect(&list, 4).await.expect("pool");
    answered(&pool).await;
    frozen.set(Link::Frozen);
    let started = Instant::now();
    answered(&pool).await;
    assert_eq!(pool.connect_options().get_port(), 3306);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    // The idle connections to the frozen node are closed, not pinged until the acquire
    // timeout: each query now answers at once.
    for _ in 0..10 {
        let answer = tokio::time::timeout(Duration::from_secs(1), shared::db::ping(&pool)).await;
        assert!(matches!(answer, Ok(Ok(()))), "{answer:?}");
    }
}

/// The whole path through nodes that die: the ingress publishes to a RabbitMQ node and the
/// worker consumes from another and writes to a MariaDB node; all three die after the first
/// checkout, and the second goes through the next nodes of the lists without a restart.
#[sqlx::test(migrations = "../migrations")]
async fn checkouts_are_decided_through_nodes_that_die(pool: sqlx::MySqlPool) {
    let ingress_broker = Proxy::to(RABBITMQ).await;
    let worker_broker = Proxy::to(RABBITMQ).await;
    let worker_db = Proxy::to(MARIADB).await;
    let db_url = database_url(&pool);
    let db_path = db_url.trim_start_matches("mysql://root@127.0.0.1:3306");
    let ingress_amqp = nodes(&[amqp_url(&ingress_broker.addr()), amqp_url(RABBITMQ)]);
    let worker_amqp = nodes(&[amqp_url(&worker_broker.addr()), amqp_url(RABBITMQ)]);
    let worker_database = nodes(&[
        format!("mysql://root@{}{db_path}", worker_db.addr()),
        db_url.clone(),
    ]);
    let mut app = spawn_app_configured(pool, 0, |c| c.amqp.url = ingress_amqp).await;
    app.add_worker_configured(|c| {
        c.amqp.url = worker_amqp;
        c.database.url = worker_database;
    });
    let user = app
        .create_user(["5000000", "5000000", "5000000", "5000000"])
        .await;

    let checkout = |external_id: String| {
        let app = &app;
        let body = transaction_body(&user, "1000000", "50000", "1000000", "2.5", 3);
        async move {
            // A 503 (the ingress's node died under the publish) is retried with the same
            // external id, as a merchant does.
            eventually(40, "the checkout decided", || async {
                let r = app
                    .send(
                        &app.merchant,
                        "POST",
                        "/transaction",
                        Some(&external_id),
                        Some(body.as_bytes()),
                        &[("Prefer", "wait=10")],
                    )
                    .await;
                (r.status != 503).then_some(r)
            })
            .await
        }
    };
    let first = checkout(fresh_id()).await;
    assert_eq!(first.status, 201, "{}", first.body);
    assert!(ingress_broker.forwarded() > 0 && worker_broker.forwarded() > 0);
    assert!(
        worker_db.forwarded() > 0,
        "the worker wrote through the first database node"
    );

    for node in [&ingress_broker, &worker_broker, &worker_db] {
        node.set(Link::Down);
    }
    let external_id = fresh_id();
    let second = checkout(external_id.clone()).await;
    assert_eq!(second.status, 201, "{}", second.body);
    assert_eq!(second.data()["status"], "APPROVED", "{}", second.body);
    assert_eq!(contracts_with_external_id(&app.pool, &external_id).await, 1);
    app.shutdown().await;
}
