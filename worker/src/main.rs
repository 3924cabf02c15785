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
    worker::run(config, None, shared::shutdown::signal()).await?;
    Ok(())
}
