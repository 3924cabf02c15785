//! `xyzctl dlq …`: the dead-letter operations of `shared::dlq`, one JSON line per entry.

use anyhow::Context;
use shared::amqp::Topology;
use shared::dlq::{self, Selection};
use shared::nodes::Nodes;

async fn connect(amqp_url: &Nodes, topology: &Topology) -> anyhow::Result<lapin::Connection> {
    let (conn, _) = shared::amqp::connect_any(amqp_url, 0, "xyzctl-dlq")
        .await
        .context("RabbitMQ")?;
    topology.declare(&conn).await?;
    Ok(conn)
}

/// Prints every dead-lettered command (they stay in the queue).
pub(crate) async fn list(amqp_url: &Nodes, topology: &Topology) -> anyhow::Result<()> {
    let conn = connect(amqp_url, topology).await?;
    let listed = dlq::list(&conn, topology, dlq::MAX_TAKEN).await;
    let _ = conn.close(200, "done".into()).await;
    let listed = listed?;
    for entry in &listed.entries {
        println!("{}", serde_json::to_string(entry)?);
    }
    eprintln!(
        "{} message(s) in {}",
        listed.messages,
        topology.dead_letter_queue()
    );
    Ok(())
}

/// Re-drives the selected commands (`shared::dlq::replay` says how, and why twice is safe).
pub(crate) async fn replay(
    amqp_url: &Nodes,
    topology: &Topology,
    ids: &[String],
    all: bool,
) -> anyhow::Result<()> {
    let conn = connect(amqp_url, topology).await?;
    let selection = if all {
        Selection::All
    } else {
        Selection::Ids(ids.to_vec())
    };
    let replayed = dlq::replay(&conn, topology, &selection).await;
    let _ = conn.close(200, "done".into()).await;
    let replayed = replayed?;
    for entry in &replayed {
        println!("{}", serde_json::json!({ "replayed": entry }));
    }
    eprintln!("replayed {} command(s)", replayed.len());
    Ok(())
}
