//! Webhooks (SPEC §11), the pure part: the event types, Standard Webhooks signing, endpoint
//! secrets, the retry schedule, and which URLs and addresses a webhook may be sent to. The
//! registration (ingress) and the delivery (worker) both judge a URL with these, so the two
//! cannot disagree.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// What a merchant can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = WebhookEventType))]
pub enum EventType {
    /// An asynchronous call of the merchant became final; `data` is its status.
    #[serde(rename = "call.completed")]
    CallCompleted,
    /// Nothing is outstanding on a contract of the merchant; `data` is the contract.
    #[serde(rename = "contract.paid_off")]
    ContractPaidOff,
    /// A refund cancelled a contract of the merchant; `data` is the contract.
    #[serde(rename = "contract.cancelled")]
    ContractCancelled,
    /// An installment of a contract of the merchant became overdue; `data` is the contract.
    #[serde(rename = "installment.overdue")]
    InstallmentOverdue,
}

impl EventType {
    pub const ALL: [EventType; 4] = [
        EventType::CallCompleted,
        EventType::ContractPaidOff,
        EventType::ContractCancelled,
        EventType::InstallmentOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::CallCompleted => "call.completed",
            EventType::ContractPaidOff => "contract.paid_off",
            EventType::ContractCancelled => "contract.cancelled",
            EventType::InstallmentOverdue => "installment.overdue",
        }
    }

    pub fn parse(s: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether an event's body is rendered again at each attempt from the outcome that caused
    /// it rather than stored: a call's final outcome never changes (`call.completed`). A
    /// contract's events show the contract as it was then, so their bodies are stored.
    pub fn renders_from_outcome(self) -> bool {
        self == EventType::CallCompleted
    }
}

/// A delivery's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = DeliveryStatus))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

const SECRET_PREFIX: &str = "whsec_";
const SECRET_BYTES: usize = 32;

/// A fresh endpoint secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> Result<String, crate::crypto::CryptoError> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| crate::crypto::CryptoError::Random)?;
    Ok(format!("{SECRET_PREFIX}{}", B64.encode(bytes)))
}

/// The key the signature is made with: the bytes the base64 after `whsec_` stands for.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    B64.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
        .ok()
}

/// `webhook-signature`'s value: `v1,` + base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}").
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
}

/// The waits between attempts: after the n-th failed attempt the next comes `delays[n-1]`
/// later; after the last one the event is failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// Comma-separated whole seconds, e.g. `5,300,1800`.
    pub fn parse(s: &str) -> Result<RetrySchedule, String> {
        let delays = s
            .split(',')
            .map(|d| {
                d.trim()
                    .parse::<u64>()
                    .map(Duration::from_secs)
                    .map_err(|_| format!("`{d}` is not a whole number of seconds"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule(delays))
    }

    /// When to try again after `attempts` failed attempts; `None`: give up.
    pub fn after(&self, attempts: u32) -> Option<Duration> {
        let n = usize::try_from(attempts).ok()?.checked_sub(1)?;
        self.0.get(n).copied()
    }
}

/// Whether the URLs of local receivers are allowed (tests): `http` and loopback addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loopback {
    Refused,
    Allowed,
}

/// A webhook URL, checked for its shape: `https` with a host (or, when loopback is allowed,
/// `http` to `localhost` or a loopback address), no credentials, at most 2048 characters.
/// Where the host points is checked by [`resolve_public`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
}

impl WebhookUrl {
    pub fn parse(s: &str, loopback: Loopback) -> Result<WebhookUrl, String> {
        if s.len() > 2048 {
            return Err("must be at most 2048 characters".into());
        }
        let url = url::Url::parse(s).map_err(|_| "must be an absolute https URL".to_owned())?;
        let local = match url.host() {
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback == Loopback::Allowed && local => {}
            _ => return Err("must be an https URL".into()),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host".into());
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        Ok(WebhookUrl { url })
    }

    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }

    fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The host as DNS knows it (an IPv6 literal without its brackets).
    pub fn host(&self) -> String {
        match self.url.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => String::new(),
        }
    }

    /// The host when it is an address literal (no DNS involved).
    pub fn ip(&self) -> Option<IpAddr> {
        match self.url.host()? {
            url::Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            url::Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            url::Host::Domain(_) => None,
        }
    }

    pub fn port(&self) -> u16 {
        self.url.port_or_known_default().unwrap_or(443)
    }
}

/// Why an address may not receive webhooks, or `None` when it may.
pub fn refusal(ip: IpAddr, loopback: Loopback) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    if ip.is_loopback() {
        return (loopback == Loopback::Refused).then_some("a loopback address");
    }
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    let why = match (a, b, c) {
        (169, 254, 169) if ip.octets()[3] == 254 => "the cloud metadata address",
        (0, _, _) => "an unspecified (\"this network\") address",
        (10, _, _) | (192, 168, _) => "a private address",
        (172, b, _) if (16..=31).contains(&b) => "a private address",
        (100, b, _) if (64..=127).contains(&b) => "a shared (CGNAT) address",
        (169, 254, _) => "a link-local address",
        (192, 0, 0) => "an IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "a documentation address",
        (198, b, _) if b == 18 || b == 19 => "a benchmarking address",
        (192, 88, 99) => "a 6to4 relay address",
        (a, _, _) if (224..240).contains(&a) => "a multicast address",
        (a, _, _) if a >= 240 => "a reserved or broadcast address",
        _ => return None,
    };
    Some(why)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    let why = if ip.is_unspecified() {
        "an unspecified address"
    } else if (s[0] & 0xfe00) == 0xfc00 {
        "a unique-local address"
    } else if (s[0] & 0xffc0) == 0xfe80 || (s[0] & 0xffc0) == 0xfec0 {
        "a link-local address"
    } else if (s[0] & 0xff00) == 0xff00 {
        "a multicast address"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "a documentation address"
    } else if s[0] == 0x0064 && s[1] == 0xff9b {
        "a NAT64 address (it reaches IPv4 addresses unchecked)"
    } else if s[0] == 0x2002 {
        "a 6to4 address (it reaches IPv4 addresses unchecked)"
    } else if s[0] == 0x2001 && s[1] == 0 {
        "a Teredo address (it reaches IPv4 addresses unchecked)"
    } else if s[..6] == [0, 0, 0, 0, 0, 0] {
        "an IPv4-compatible address"
    } else if s[0] == 0x0100 && s[1..4] == [0, 0, 0] {
        "a discard-only address"
    } else {
        return None;
    };
    Some(why)
}

/// Every address `host` resolves to, each checked; the first refused one is the error. An
/// empty answer is an error too.
pub async fn resolve_public(
    url: &WebhookUrl,
    loopback: Loopback,
) -> Result<Vec<std::net::SocketAddr>, String> {
    let port = url.port();
    let addrs: Vec<std::net::SocketAddr> = match url.ip() {
        Some(ip) => vec![std::net::SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((url.host(), port))
            .await
            .map_err(|e| format!("host `{}` does not resolve: {e}", url.host()))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("host `{}` does not resolve", url.host()));
    }
    for a in &addrs {
        if !url.is_https() && !a.ip().is_loopback() {
            return Err(format!(
                "host `{}` resolves to {}: only loopback receivers may use http",
                url.host(),
                a.ip()
            ));
        }
        if let Some(why) = refusal(a.ip(), loopback) {
            return Err(format!(
                "host `{}` resolves to {} ({why}), which may not receive webhooks",
                url.host(),
                a.ip()
            ));
        }
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks specification (and of its reference
    /// libraries' tests).
    #[test]
    fn signature_matches_the_specification_test_vector() {
        let key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("base64");
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn a_new_secret_is_32_random_bytes_behind_the_prefix() {
        let a = new_secret().expect("random");
        let b = new_secret().expect("random");
        assert!(a.starts_with("whsec_"));
        assert_eq!(secret_key(&a).map(|k| k.len()), Some(32));
        assert_ne!(a, b);
    }

    #[test]
    fn the_schedule_gives_up_after_its_last_delay() {
        let s = RetrySchedule::parse("1, 2,4").expect("parses");
        assert_eq!(s.after(1), Some(Duration::from_secs(1)));
        assert_eq!(s.after(3), Some(Duration::from_secs(4)));
        assert_eq!(s.after(4), None);
        assert_eq!(s.after(0), None);
        assert!(RetrySchedule::parse("1,x").is_err());
        assert!(RetrySchedule::parse("").is_err());
    }

    #[test]
    fn only_public_addresses_may_receive() {
        let refused = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ];
        for ip in refused {
            let ip: IpAddr = ip.parse().expect("address");
            assert!(refusal(ip, Loopback::Refused).is_some(), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700::1111"] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(refusal(ip, Loopback::Refused), None, "{ip}");
        }
        let lo: IpAddr = "127.0.0.1".parse().expect("address");
        assert_eq!(refusal(lo, Loopback::Allowed), None);
        let metadata: IpAddr = "169.254.169.254".parse().expect("address");
        assert!(refusal(metadata, Loopback::Allowed).is_some());
    }

    #[test]
    fn urls_are_https_with_a_host_unless_loopback_is_allowed() {
        assert!(WebhookUrl::parse("https://example.com/hook", Loopback::Refused).is_ok());
        for bad in [
            "http://example.com/hook",
            "ftp://example.com",
            "https://",
            "example.com",
            "https://user:pw@example.com/",
        ] {
            assert!(WebhookUrl::parse(bad, Loopback::Refused).is_err(), "{bad}");
        }
        assert!(WebhookUrl::parse("http://127.0.0.1:8080/h", Loopback::Allowed).is_ok());
        assert!(WebhookUrl::parse("http://localhost:8080/h", Loopback::Allowed).is_ok());
        assert!(WebhookUrl::parse("http://example.com/h", Loopback::Allowed).is_err());
        let v6 = WebhookUrl::parse("https://[::1]:8443/", Loopback::Refused).expect("parses");
        assert_eq!(v6.host(), "::1");
        assert_eq!(v6.port(), 8443);
    }
}
