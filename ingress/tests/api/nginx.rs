//! The repo's nginx.conf, rendered for local ports, in front of two real ingress processes.

use crate::helpers::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join(name);
    assert!(
        bin.exists(),
        "{} missing: run the tests with scripts/test.sh",
        bin.display()
    );
    bin
}

/// A child process, SIGKILLed on drop; nginx gets SIGTERM so its workers exit with it.
struct Proc {
    child: Child,
    graceful: bool,
}

impl Proc {
    fn kill(&mut self) {
        if self.graceful {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
        } else {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start_ingress(app: &TestApp, port: u16, log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    Proc {
        graceful: false,
        child: Command::new(sibling_binary("ingress"))
            .env("DATABASE_URL", database_url(&app.pool))
            .env("AMQP_PREFIX", &app.prefix)
            .env("REDIS_PREFIX", &app.prefix)
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info,ingress=debug")
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("ingress starts"),
    }
}

/// nginx.conf with its upstream servers and listen port pointed at local ports.
pub fn render_nginx_conf(listen: u16, upstreams: &[u16]) -> String {
    let conf = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../nginx.conf"))
        .expect("nginx.conf");
    assert!(conf.contains("server ingress-1:8080") && conf.contains("server ingress-2:8080"));
    conf.replace(
        "server ingress-1:8080",
        &format!("server 127.0.0.1:{}", upstreams[0]),
    )
    .replace(
        "server ingress-2:8080",
        &format!("server 127.0.0.1:{}", upstreams[1]),
    )
    .replace(
        "listen 8080 reuseport",
        &format!("listen 127.0.0.1:{listen}"),
    )
}

fn start_nginx(dir: &Path, conf: &str) -> Proc {
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    let nginx = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("nginx is installed (scripts/test.sh installs Debian's package)");
    Proc {
        graceful: true,
        child: Command::new(nginx)
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg(format!(
                "pid {}; daemon off;",
                dir.join("nginx.pid").display()
            ))
            .stdout(std::fs::File::create(dir.join("access.log")).expect("log"))
            .stderr(std::fs::File::create(dir.join("error.log")).expect("log"))
            .spawn()
            .expect("nginx starts"),
    }
}

async fn wait_up(app: &TestApp, url: &str) {
    for _ in 0..100 {
        if let Ok(r) = app.http.get(format!("{url}/healthz")).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never came up");
}

fn served_requests(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("request done")
        .count()
}

#[sqlx::test(migrations = "../migrations")]
async fn nginx_balances_fails_over_and_answers_503_when_no_ingress_is_left(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let user = app
        .create_user(["100000", "300000", "500000", "10000000"])
        .await;
    let dir = std::env::temp_dir().join(format!("nginx-{}", app.prefix));
    std::fs::create_dir_all(&dir).expect("dir");
    let (p1, p2, listen) = (free_port(), free_port(), free_port());
    let mut ingress_1 = start_ingress(&app, p1, &dir.join("ingress-1.log"));
    let mut ingress_2 = start_ingress(&app, p2, &dir.join("ingress-2.log"));
    let _nginx = start_nginx(&dir, &render_nginx_conf(listen, &[p1, p2]));
    let base = format!("http://127.0.0.1:{listen}");
    wait_up(&app, &format!("http://127.0.0.1:{p1}")).await;
    wait_up(&app, &format!("http://127.0.0.1:{p2}")).await;
    wait_up(&app, &base).await;
    let limits = format!("/users/{user}/limits");

    // Traffic reaches both ingresses.
    let ts = now_ts();
    let rs = futures_util::future::join_all(
        (0..40).map(|_| app.send_via(&base, &app.merchant, "GET", &limits, None, None, &[], &ts)),
    )
    .await;
    assert!(rs.iter().all(|r| r.status == 200));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        served_requests(&dir.join("ingress-1.log")) > 0,
        "ingress 1 got no traffic"
    );
    assert!(
        served_requests(&dir.join("ingress-2.log")) > 0,
        "ingress 2 got no traffic"
    );

    // The client address the audit log records is nginx's view, never a forged header.
    let spoofed = app
        .send_via(
            &base,
            &app.merchant,
            "GET",
            &limits,
            None,
            None,
            &[("X-Forwarded-For", "6.6.6.6")],
            &now_ts(),
        )
        .await;
    assert_eq!(spoofed.status, 200);
    let call = spoofed.body["api_call_id"].as_str().expect("id").to_owned();
    let mut ip: Option<String> = None;
    for _ in 0..30 {
        ip = sqlx::query_scalar("SELECT client_ip FROM api_call_logs WHERE api_call_id = ?")
            .bind(&call)
            .fetch_optional(&app.pool)
            .await
            .expect("query")
            .flatten();
        if ip.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));

    // Hostile clients are cut off by nginx, in the envelope where nginx answers at all.
    let huge = vec![b'x'; 10 * 1024 * 1024];
    let r = app
        .send_via(
            &base,
            &app.merchant,
            "POST",
            "/transaction",
            Some("huge"),
            Some(&huge),
            &[],
            &now_ts(),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.action(), "PAYLOAD_TOO_LARGE");
    let big_header = "h".repeat(100 * 1024);
    let r = app
        .send_via(
            &base,
            &app.merchant,
            "GET",
            &limits,
            None,
            None,
            &[("X-Filler", big_header.as_str())],
            &now_ts(),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.action(), "INVALID_PAYLOAD_FORMAT");
    assert!(
        r.body["api_call_id"]
            .as_str()
            .is_some_and(|id| id.starts_with("API_CALL_"))
    );
    // A slow client (headers, then a body that never comes) is dropped after nginx's
    // client_body_timeout instead of holding a connection.
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(("127.0.0.1", listen))
            .await
            .expect("connect");
        let head = "POST /transaction HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{";
        sock.write_all(head.as_bytes()).await.expect("write");
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut buf)).await;
        assert!(read.is_ok(), "the slow client was not cut off");
        assert!(
            started.elapsed() >= Duration::from_secs(9),
            "cut off by the body timeout"
        );
    }

    // One ingress dies: new requests all succeed; POSTs are never lost nor doubled.
    ingress_1.kill();
    let mut accepted = Vec::new();
    for i in 0..20 {
        let ext = format!("{}-{i}", fresh_id());
        let body = transaction_body(&user, "100", "0", "100", "0", 1);
        let r = app
            .send_via(
                &base,
                &app.merchant,
                "POST",
                "/transaction",
                Some(&ext),
                Some(body.as_bytes()),
                &[],
                &now_ts(),
            )
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        let retry = app
            .send_via(
                &base,
                &app.merchant,
                "POST",
                "/transaction",
                Some(&ext),
                Some(body.as_bytes()),
                &[],
                &now_ts(),
            )
            .await;
        assert_eq!(retry.status, 409, "{}", retry.body);
        assert_eq!(retry.data()["original_api_call_id"], r.body["api_call_id"]);
        accepted.push(r.body["api_call_id"].as_str().expect("id").to_owned());
    }
    for call in &accepted {
        assert_eq!(
            app.wait_final(&app.merchant, call).await["status"],
            "APPROVED"
        );
    }
    assert_limit_equation(&app.pool).await;

    // No ingress left: the 503 envelope, from nginx itself.
    ingress_2.kill();
    let r = app
        .send_via(
            &base,
            &app.merchant,
            "GET",
            &limits,
            None,
            None,
            &[],
            &now_ts(),
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.action(), "SERVICE_UNAVAILABLE");
    let id = r.body["api_call_id"].as_str().expect("api_call_id");
    assert!(id.starts_with("API_CALL_"));
    assert_eq!(r.headers["x-api-call-id"], id);
    assert!(r.headers.contains_key("retry-after"));

    // Too large a body: nginx answers 413 in the envelope too.
    let big = vec![b'x'; 70_000];
    let r = app
        .send_via(
            &base,
            &app.merchant,
            "POST",
            "/transaction",
            Some("big"),
            Some(&big),
            &[],
            &now_ts(),
        )
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
    assert_eq!(r.action(), "PAYLOAD_TOO_LARGE");
    let log = std::fs::read_to_string(dir.join("access.log")).expect("access log");
    assert!(
        log.contains("\"api_call_id\":\"API_CALL_"),
        "access log records api call ids"
    );
    assert!(log.contains("\"upstream_time\""));
    let _ = std::fs::remove_dir_all(&dir);
    app.shutdown().await;
}
