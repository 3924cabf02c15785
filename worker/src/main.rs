use clap::Parser;
use worker::config::WorkerConfig;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("info,sqlx=warn,lapin=warn");
    let config = WorkerConfig::parse();
    if !config.metrics_addr.is_empty() {
        let addr = config
            .metrics_addr
            .parse()
            .map_err(|e| anyhow::anyhow!("METRICS_ADDR: {e}"))?;
        // Commands matter more than metrics: a taken port is logged, not fatal.
        match shared::metrics::serve(addr) {
            Ok(()) => shared::metrics::describe(),
            Err(e) => tracing::error!(error = %e, %addr, "metrics listener not started"),
        }
    }
    worker::run(config, None, shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received");
}
