//! Building and running the ingress. `Application::build` binds the port and exposes it, so
//! tests run the real application on port 0.

use crate::api_keys::ApiKeys;
use crate::audit::AuditLog;
use crate::config::IngressConfig;
use crate::state::{AppState, Inner};
use crate::waiters::Waiters;
use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;
use shared::amqp::Publisher;
use shared::envelope::MessageAction;
use sqlx::MySqlPool;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower_http::catch_panic::CatchPanicLayer;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("configuration: {0}")]
    Config(String),
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    state: AppState,
    audit_writer: JoinHandle<()>,
    acceptance_writer: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Application {
    /// Connects lazily to MySQL, Redis and RabbitMQ (the ingress starts even while they are
    /// down; readiness tells), loads the API keys and binds the listener. `pool` lets tests
    /// hand in their own database.
    pub async fn build(
        config: IngressConfig,
        pool: Option<MySqlPool>,
    ) -> Result<Application, StartupError> {
        let keyring = config
            .crypto
            .keyring()
            .map_err(|e| StartupError::Config(e.to_string()))?;
        let shared::connections::Connections {
            pool,
            cache,
            topology,
        } = shared::connections::Connections::open(
            &config.database,
            &config.redis,
            &config.amqp,
            pool,
        )
        .await
        .map_err(|e| StartupError::Config(e.to_string()))?;
        let ingress_id = config
            .ingress_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let confirm_timeout = Duration::from_millis(config.confirm_timeout_ms);
        let publisher = Publisher::start(
            &config.amqp.url,
            &format!("ingress-{ingress_id}"),
            topology.clone(),
            confirm_timeout,
        );
        let api_keys = ApiKeys::new(Duration::from_millis(config.key_stale_after_ms));
        if let Err(e) = api_keys.reload(&pool, &keyring).await {
            tracing::warn!(error = %e, "initial API key load failed; retrying in the background");
        }
        let waiters = Waiters::new(cache.names.reply_channel(&ingress_id));
        let (audit, audit_writer) = AuditLog::start(pool.clone(), config.audit_spill_path.clone());
        let (acceptances, acceptance_writer) =
            crate::acceptances::Acceptances::start(cache.clone());
        let lookups = crate::lookups::Lookups::start(pool.clone());
        let commands = crate::commands::Commands::start(
            publisher.clone(),
            topology.command_queue(),
            config.publish_in_flight,
            confirm_timeout,
        );
        let seen_complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let background = vec![
            api_keys.spawn_refresh(
                pool.clone(),
                keyring.clone(),
                Duration::from_millis(config.key_refresh_ms),
            ),
            waiters.spawn_listener(config.redis.url.clone()),
            api_keys.spawn_change_listener(config.redis.url.clone(), cache.names.key_changes()),
            crate::seen::spawn_maintainer(
                pool.clone(),
                cache.clone(),
                ingress_id.clone(),
                seen_complete.clone(),
            ),
        ];
        let state = AppState::new(Inner {
            pool,
            cache,
            publisher,
            commands,
            api_keys,
            keyring,
            audit,
            acceptances,
            lookups,
            waiters,
            trusted_proxies: config.trusted_proxies.clone(),
            rate_limit: crate::rate::RateLimit {
                per_second: config.rate_limit_per_second,
                burst: config.rate_limit_burst,
            },
            held: crate::rate::Held::default(),
            metrics: {
                let handle = shared::metrics::handle();
                shared::metrics::describe();
                handle
            },
            max_waiters: config.max_waiters,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            seen_complete,
            webhook_loopback: config.webhooks.loopback(),
        });
        let listener = TcpListener::bind(&config.listen_addr)
            .await
            .map_err(|source| StartupError::Bind {
                addr: config.listen_addr.clone(),
                source,
            })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: config.listen_addr.clone(),
                source,
            })?
            .port();
        tracing::info!(%ingress_id, port, "ingress listening");
        Ok(Application {
            listener,
            port,
            state,
            audit_writer,
            acceptance_writer,
            background,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, finishes in-flight requests, then flushes the audit
    /// log and the acceptance marks before returning.
    pub async fn run_until_stopped<F>(self, shutdown: F) -> std::io::Result<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (router, document) = crate::routes::router(&self.state);
        crate::openapi::publish(document);
        let router = router.layer(CatchPanicLayer::custom(panic_response));
        let router = with_security_headers(router);
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        for task in &self.background {
            task.abort();
        }
        drop(self.state);
        if tokio::time::timeout(Duration::from_secs(5), self.acceptance_writer)
            .await
            .is_err()
        {
            tracing::error!("acceptance marks did not drain within 5 s");
        }
        if tokio::time::timeout(Duration::from_secs(10), self.audit_writer)
            .await
            .is_err()
        {
            tracing::error!("audit log did not drain within 10 s");
        }
        tracing::info!("ingress stopped");
        served
    }
}

/// Headers every response carries (a route may set its own, e.g. the docs page's CSP).
fn with_security_headers(router: Router) -> Router {
    use axum::http::{HeaderName, HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    let set = |name: HeaderName, value: &'static str| {
        SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
    };
    router
        .layer(set(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(set(header::CACHE_CONTROL, "no-store"))
        .layer(set(header::X_FRAME_OPTIONS, "DENY"))
        .layer(set(header::REFERRER_POLICY, "no-referrer"))
        .layer(set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; frame-ancestors 'none'",
        ))
        .layer(set(header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
}

/// A bug must not become a 500 with a stack trace: answer 503 in the envelope, log it.
fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("request handler panicked");
    crate::pipeline::envelope_response(
        StatusCode::SERVICE_UNAVAILABLE,
        MessageAction::ServiceUnavailable,
        json!("internal error; retry with the same X-External-Id"),
        &shared::ids::new_api_call_id(),
    )
}
