use clap::Parser;
use ingress::config::IngressConfig;
use ingress::startup::Application;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::telemetry::init("info,sqlx=warn,lapin=warn");
    let config = IngressConfig::parse();
    let app = Application::build(config, None).await?;
    app.run_until_stopped(shared::shutdown::signal()).await?;
    Ok(())
}
