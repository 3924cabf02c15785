//! `loadgen poison`: publishes the three kinds of poison message straight to the command
//! queue (undecodable, unknown type, unknown schema version), as the fault harness needs.

use lapin::BasicProperties;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use shared::amqp::Topology;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub(crate) struct PoisonArgs {
    #[command(flatten)]
    amqp: shared::config::AmqpConfig,
}

pub(crate) async fn poison(args: PoisonArgs) -> anyhow::Result<ExitCode> {
    let topology = Topology::new(&args.amqp.prefix);
    let (conn, _) = shared::amqp::connect_any(&args.amqp.url, 0, "loadgen-poison").await?;
    topology.declare(&conn).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let shape = serde_json::json!({
        "v": shared::messages::COMMAND_SCHEMA_VERSION, "api_call_id": "API_CALL_poison", "merchant_id": "m",
        "client_id": "c", "external_id": "poison", "body_sha256": "00", "accepted_at": "2026-01-01T00:00:00Z",
        "reply_to": null, "type": "TRANSACTION", "payload": {"user_id": "USR_x"}
    });
    let mut unknown_type = shape.clone();
    unknown_type["type"] = "REFUND".into();
    let mut unknown_version = shape;
    unknown_version["v"] = 999.into();
    for payload in [
        b"\x00\xffnot a command".to_vec(),
        unknown_type.to_string().into_bytes(),
        unknown_version.to_string().into_bytes(),
    ] {
        let confirm = channel
            .basic_publish(
                "".into(),
                topology.command_queue().into(),
                BasicPublishOptions::default(),
                &payload,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "the broker refused a poison message");
    }
    let _ = conn.close(200, "done".into()).await;
    println!(
        "{}",
        serde_json::json!({"poison_published": 3, "queue": topology.command_queue()})
    );
    Ok(ExitCode::SUCCESS)
}
