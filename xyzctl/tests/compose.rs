//! The container deployment (`docker-compose.yml`, `.env.example`, `nginx.conf`,
//! `rabbitmq/`) checked against the configuration the binaries actually read: the environment
//! variables come from the binaries' own clap definitions (`IngressConfig`, `WorkerConfig`,
//! and `xyzctl --help`), not from a list kept here.
//!
//! No Docker engine is needed. The last test also runs `docker compose config` when the
//! compose plugin is installed.

use clap::CommandFactory;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use yaml_rust2::{Yaml, YamlLoader, yaml::Hash};

// ---- files -------------------------------------------------------------------------------------

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xyzctl sits in the workspace root")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The compose file, parsed, with YAML merge keys (`<<: *anchor`) applied as compose does.
fn compose() -> Yaml {
    let text = read("docker-compose.yml");
    let mut docs = YamlLoader::load_from_str(&text).expect("docker-compose.yml is valid YAML");
    assert_eq!(docs.len(), 1, "docker-compose.yml holds one document");
    apply_merge_keys(docs.remove(0))
}

fn apply_merge_keys(node: Yaml) -> Yaml {
    match node {
        Yaml::Hash(map) => {
            let mut merged = Hash::new();
            let mut own = Hash::new();
            for (key, value) in map {
                if key.as_str() == Some("<<") {
                    let sources = match value {
                        Yaml::Array(list) => list,
                        other => vec![other],
                    };
                    // Among several merged maps the first one wins; explicit keys win over all.
                    for source in sources {
                        let Yaml::Hash(source) = apply_merge_keys(source) else {
                            panic!("a merge key (<<) must name mappings");
                        };
                        for (k, v) in source {
                            if !merged.contains_key(&k) {
                                merged.insert(k, v);
                            }
                        }
                    }
                } else {
                    own.insert(key, apply_merge_keys(value));
                }
            }
            for (k, v) in own {
                merged.insert(k, v);
            }
            Yaml::Hash(merged)
        }
        Yaml::Array(list) => Yaml::Array(list.into_iter().map(apply_merge_keys).collect()),
        other => other,
    }
}

fn scalar(node: &Yaml) -> Option<String> {
    match node {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn services(doc: &Yaml) -> BTreeMap<String, Yaml> {
    doc["services"]
        .as_hash()
        .expect("a services mapping")
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().expect("service names are strings").to_owned(),
                v.clone(),
            )
        })
        .collect()
}

fn service<'a>(all: &'a BTreeMap<String, Yaml>, name: &str) -> &'a Yaml {
    all.get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

/// `environment:` as a map, in either of compose's two forms.
fn environment(service: &Yaml) -> BTreeMap<String, String> {
    match &service["environment"] {
        Yaml::Hash(map) => map
            .iter()
            .map(|(k, v)| {
                let k = k.as_str().expect("variable names are strings").to_owned();
                let v = scalar(v).unwrap_or_else(|| panic!("{k} has no scalar value"));
                (k, v)
            })
            .collect(),
        Yaml::Array(list) => list
            .iter()
            .map(|item| {
                let item = item.as_str().expect("environment entries are strings");
                let (k, v) = item.split_once('=').unwrap_or((item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Yaml::BadValue | Yaml::Null => BTreeMap::new(),
        other => panic!("unexpected environment: {other:?}"),
    }
}

fn strings(node: &Yaml) -> Vec<String> {
    match node {
        Yaml::Array(list) => list.iter().filter_map(scalar).collect(),
        Yaml::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

/// The program a service runs (the first word of its command).
fn program(service: &Yaml) -> Option<String> {
    strings(&service["command"]).into_iter().next()
}

/// Services running the engine image (they have a `build:` of this repository).
fn app_services(all: &BTreeMap<String, Yaml>) -> BTreeMap<String, (String, Yaml)> {
    all.iter()
        .filter(|(_, s)| !s["build"].is_badvalue())
        .map(|(name, s)| {
            let program = program(s).unwrap_or_else(|| panic!("{name} sets no command"));
            (name.clone(), (program, s.clone()))
        })
        .collect()
}

/// The single-server stack's ingresses (the `cluster` profile's are checked by
/// `scripts/cluster.sh check-compose`).
fn ingress_services(all: &BTreeMap<String, Yaml>) -> Vec<String> {
    app_services(all)
        .into_iter()
        .filter(|(_, (program, svc))| program == "ingress" && !in_cluster_profile(svc))
        .map(|(name, _)| name)
        .collect()
}

fn in_cluster_profile(service: &Yaml) -> bool {
    strings(&service["profiles"]).iter().any(|p| p == "cluster")
}

fn in_profile(service: &Yaml) -> bool {
    !service["profiles"].is_badvalue()
}

/// Every scalar of the document (keys and values), in order.
fn all_scalars(node: &Yaml, out: &mut Vec<String>) {
    match node {
        Yaml::Hash(map) => {
            for (k, v) in map {
                all_scalars(k, out);
                all_scalars(v, out);
            }
        }
        Yaml::Array(list) => list.iter().for_each(|item| all_scalars(item, out)),
        other => out.extend(scalar(other)),
    }
}

// ---- the binaries' configuration ----------------------------------------------------------------

/// Variables read outside clap by every binary (shared::telemetry).
const TELEMETRY_VARS: &[&str] = &["LOG_FORMAT", "RUST_LOG"];

/// Environment variable → default value, from a clap command.
fn clap_env(cmd: &clap::Command) -> BTreeMap<String, Option<String>> {
    cmd.get_arguments()
        .filter_map(|arg| {
            let env = arg
                .get_env()?
                .to_str()
                .expect("ASCII variable names")
                .to_owned();
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            Some((env, (!defaults.is_empty()).then(|| defaults.join(","))))
        })
        .collect()
}

/// The variables `xyzctl` reads, from its own help (its parser is private to the binary):
/// `xyzctl --help` and, recursively, every subcommand's.
fn xyzctl_env() -> BTreeSet<String> {
    fn help(path: &[String]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_xyzctl"))
            .args(path)
            .arg("--help")
            .env_clear()
            .output()
            .expect("run xyzctl --help");
        assert!(output.status.success(), "xyzctl {path:?} --help failed");
        String::from_utf8(output.stdout).expect("UTF-8 help")
    }
    fn walk(path: Vec<String>, names: &mut BTreeSet<String>) {
        let text = help(&path);
        names.extend(text.split("[env: ").skip(1).map(|rest| {
            rest.chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect::<String>()
        }));
        // "Commands:" lists the subcommands, one per line, until a blank line.
        let Some(start) = text.find("Commands:") else {
            return;
        };
        for line in text[start..]
            .lines()
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
        {
            let Some(sub) = line.split_whitespace().next() else {
                continue;
            };
            if sub != "help" {
                let mut next = path.clone();
                next.push(sub.to_owned());
                walk(next, names);
            }
        }
    }
    let mut names = BTreeSet::new();
    walk(Vec::new(), &mut names);
    assert!(
        names.contains("MIGRATION_DATABASE_URL"),
        "xyzctl's help lists its variables"
    );
    names
}

/// What each program of the engine image reads from the environment.
fn reads(program: &str) -> BTreeSet<String> {
    let mut vars: BTreeSet<String> = match program {
        "ingress" => clap_env(&ingress::config::IngressConfig::command())
            .into_keys()
            .collect(),
        "worker" => clap_env(&worker::config::WorkerConfig::command())
            .into_keys()
            .collect(),
        "xyzctl" => xyzctl_env(),
        other => panic!("the engine image has no program {other}"),
    };
    vars.extend(TELEMETRY_VARS.iter().map(|v| (*v).to_owned()));
    vars
}

fn clap_defaults() -> BTreeMap<String, Option<String>> {
    let mut all = clap_env(&ingress::config::IngressConfig::command());
    all.extend(clap_env(&worker::config::WorkerConfig::command()));
    all
}

#[test]
fn telemetry_still_reads_the_variables_assumed_here() {
    let source = read("shared/src/telemetry.rs");
    assert!(
        source.contains("\"LOG_FORMAT\""),
        "shared::telemetry reads LOG_FORMAT"
    );
    assert!(
        source.contains("try_from_default_env"),
        "shared::telemetry reads RUST_LOG"
    );
}

// ---- interpolation (${VAR}, ${VAR:-default}, ${VAR:?message}, $$) ---------------------------

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Var {
        name: String,
        op: String,
        arg: String,
    },
}

fn pieces(s: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            text.push(c);
            continue;
        }
        match chars.next() {
            Some('$') => text.push('$'),
            Some('{') => {
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('$') => return Err(format!("nested interpolation in {s:?}")),
                        Some(ch) => inner.push(ch),
                        None => return Err(format!("unterminated ${{ in {s:?}")),
                    }
                }
                let name: String = inner
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(format!("bad variable name in {s:?}"));
                }
                let rest = &inner[name.len()..];
                let (op, arg) = ["?", ":?", "-", ":-", "+", ":+"]
                    .iter()
                    .filter(|op| rest.starts_with(**op))
                    .max_by_key(|op| op.len())
                    .map(|op| ((*op).to_owned(), rest[op.len()..].to_owned()))
                    .unwrap_or_default();
                if op.is_empty() && !rest.is_empty() {
                    return Err(format!("bad interpolation ${{{inner}}} in {s:?}"));
                }
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text)));
                }
                out.push(Piece::Var { name, op, arg });
            }
            other => {
                return Err(format!(
                    "a bare ${} in {s:?}: write ${{NAME}}, or $$ for a literal $",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

fn interpolate(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    for piece in pieces(s)? {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Var { name, op, arg } => {
                let value = vars.get(&name);
                let set = value.is_some();
                let non_empty = value.is_some_and(|v| !v.is_empty());
                let value = value.cloned().unwrap_or_default();
                out.push_str(&match op.as_str() {
                    "" => value,
                    ":-" if non_empty => value,
                    "-" if set => value,
                    ":-" | "-" => arg,
                    ":?" if non_empty => value,
                    "?" if set => value,
                    ":?" | "?" => return Err(format!("{name}: {arg}")),
                    ":+" if non_empty => arg,
                    "+" if set => arg,
                    _ => String::new(),
                });
            }
        }
    }
    Ok(out)
}

fn variables_used(doc: &Yaml) -> BTreeMap<String, Vec<(String, String)>> {
    let mut scalars = Vec::new();
    all_scalars(doc, &mut scalars);
    let mut used: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for s in scalars {
        for piece in pieces(&s).unwrap_or_else(|e| panic!("docker-compose.yml: {e}")) {
            if let Piece::Var { name, op, arg } = piece {
                used.entry(name).or_default().push((op, arg));
            }
        }
    }
    used
}

// ---- .env.example -----------------------------------------------------------------------------

/// `NAME=value` lines of .env.example.
fn env_example() -> BTreeMap<String, String> {
    read(".env.example")
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
        .collect()
}

/// Every variable .env.example mentions: assigned (`NAME=`) or documented in a comment
/// (`# NAME=`).
fn env_example_documented() -> BTreeSet<String> {
    read(".env.example")
        .lines()
        .filter_map(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            let (name, _) = l.split_once('=')?;
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_owned())
        })
        .collect()
}

/// A complete .env as scripts/install.sh writes it: .env.example with every empty secret
/// generated (here: fixed, well-formed values).
fn generated_env() -> BTreeMap<String, String> {
    let mut env = env_example();
    let key_id = env.get("MASTER_KEY_ID").cloned().unwrap_or_default();
    let b64 = "c2VjcmV0LWtleS1mb3ItdGhlLWNvbXBvc2UtdGVzdCE=".to_owned(); // 32 bytes
    for (name, value) in env.iter_mut() {
        if !value.is_empty() {
            continue;
        }
        *value = if name.ends_with("_PASSWORD") || name == "RABBITMQ_ERLANG_COOKIE" {
            "00112233445566778899aabbccddeeff0011223344556677".to_owned()
        } else if name == "MASTER_KEYS" {
            format!("{key_id}={b64}")
        } else if name == "BLIND_INDEX_KEY" {
            b64.clone()
        } else {
            panic!(".env.example leaves {name} empty, and scripts/install.sh cannot generate it");
        };
    }
    env
}

/// The password of a URL's `user:password` part, the separator being the first `:` outside
/// `${…}`.
fn password_of(userinfo: &str) -> Option<&str> {
    let mut depth = 0usize;
    let bytes = userinfo.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'{' if i > 0 && bytes[i - 1] == b'$' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b':' if depth == 0 => return Some(&userinfo[i + 1..]),
            _ => {}
        }
    }
    None
}

fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    ["PASSWORD", "PASS", "PWD", "SECRET", "TOKEN"]
        .iter()
        .any(|w| n.contains(w))
        || n.ends_with("_KEY")
        || n.ends_with("_KEYS")
}

/// The resolved environment of a service, with the generated .env.
fn resolved_environment(service: &Yaml) -> BTreeMap<String, String> {
    let env = generated_env();
    environment(service)
        .into_iter()
        .map(|(k, v)| {
            let resolved = interpolate(&v, &env).unwrap_or_else(|e| panic!("{k}: {e}"));
            (k, resolved)
        })
        .collect()
}

/// The command-line equivalent of an environment, for a clap command: `--long=value`.
fn as_flags(cmd: &clap::Command, env: &BTreeMap<String, String>) -> Vec<String> {
    let mut args = vec![cmd.get_name().to_owned()];
    for (name, value) in env {
        if TELEMETRY_VARS.contains(&name.as_str()) {
            continue;
        }
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == name.as_str()))
            .unwrap_or_else(|| panic!("{} reads no {name}", cmd.get_name()));
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("{name} has no flag"));
        args.push(format!("--{long}={value}"));
    }
    args
}

// ---- nginx.conf and rabbitmq.conf ---------------------------------------------------------------

/// `server NAME:PORT` lines of nginx.conf's `upstream ingress { … }`.
fn nginx_upstream() -> Vec<(String, u16)> {
    let conf = read("nginx.conf");
    let start = conf
        .find("upstream ingress")
        .expect("nginx.conf has an `upstream ingress` block");
    let block = &conf[start..];
    let block = &block[..block.find('}').expect("the upstream block ends")];
    block
        .lines()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("server "))
        .map(|l| {
            let target = l["server ".len()..]
                .split_whitespace()
                .next()
                .expect("a server address");
            let target = target.trim_end_matches(';');
            let (host, port) = target
                .rsplit_once(':')
                .expect("upstream servers name a port");
            (host.to_owned(), port.parse().expect("a numeric port"))
        })
        .collect()
}

fn nginx_listen_port() -> u16 {
    let conf = read("nginx.conf");
    let line = conf
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("listen "))
        .expect("nginx.conf listens");
    line["listen ".len()..]
        .split(|c: char| c.is_whitespace() || c == ';')
        .next()
        .and_then(|p| p.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("a numeric listen port")
}

fn rabbitmq_conf(key: &str) -> Option<String> {
    read("rabbitmq/rabbitmq.conf").lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

// ---- the checks -------------------------------------------------------------------------------

#[test]
fn the_stack_has_every_service() {
    let all = services(&compose());
    for name in ["mariadb", "redis", "rabbitmq", "migrate", "nginx", "worker"] {
        service(&all, name);
    }
    let ingresses = ingress_services(&all);
    assert!(
        ingresses.len() >= 2,
        "at least two ingress replicas, found {ingresses:?}"
    );
    assert_eq!(program(service(&all, "migrate")).as_deref(), Some("xyzctl"));
    assert_eq!(
        strings(&service(&all, "migrate")["command"]),
        ["xyzctl", "migrate"]
    );
    assert_eq!(program(service(&all, "worker")).as_deref(), Some("worker"));
    assert!(
        service(&all, "mariadb")["image"]
            .as_str()
            .is_some_and(|i| i.starts_with("mariadb:10.11")),
        "the compose file runs MariaDB 10.11, the database the tests run on"
    );
    for name in ["prometheus", "grafana"] {
        let profiles = strings(&service(&all, name)["profiles"]);
        assert_eq!(
            profiles,
            ["observability"],
            "{name} is in the observability profile only"
        );
    }
}

#[test]
fn app_services_set_only_variables_their_binary_reads() {
    let all = services(&compose());
    for (name, (program, svc)) in app_services(&all) {
        let read_by_binary = reads(&program);
        for var in environment(&svc).keys() {
            assert!(
                read_by_binary.contains(var),
                "{name} sets {var}, which `{program}` does not read (it reads {read_by_binary:?})"
            );
        }
    }
}

#[test]
fn ingress_and_worker_get_everything_they_need() {
    let all = services(&compose());
    let needed_by_ingress = [
        "DATABASE_URL",
        "REDIS_URL",
        "AMQP_URL",
        "LISTEN_ADDR",
        "MASTER_KEYS",
        "MASTER_KEY_ID",
        "BLIND_INDEX_KEY",
        "TRUSTED_PROXIES",
    ];
    let mut ids = BTreeSet::new();
    for name in ingress_services(&all) {
        let env = environment(service(&all, &name));
        for var in needed_by_ingress {
            assert!(env.contains_key(var), "{name} does not set {var}");
        }
        let id = env
            .get("INGRESS_ID")
            .unwrap_or_else(|| panic!("{name} sets no INGRESS_ID"));
        assert!(ids.insert(id.clone()), "INGRESS_ID {id} is used twice");
    }
    let worker = environment(service(&all, "worker"));
    for var in [
        "DATABASE_URL",
        "REDIS_URL",
        "AMQP_URL",
        "MASTER_KEYS",
        "MASTER_KEY_ID",
        "BLIND_INDEX_KEY",
    ] {
        assert!(worker.contains_key(var), "worker does not set {var}");
    }
    let migrate = environment(service(&all, "migrate"));
    assert!(
        migrate.contains_key("MIGRATION_DATABASE_URL"),
        "migrate sets MIGRATION_DATABASE_URL"
    );
}

#[test]
fn the_resolved_environments_parse_with_the_binaries_own_definitions() {
    let doc = compose();
    let all = services(&doc);
    let env = generated_env();
    let nginx_ip: IpAddr = interpolate(
        service(&all, "nginx")["networks"]["backend"]["ipv4_address"]
            .as_str()
            .expect("nginx has a fixed address on the backend network"),
        &env,
    )
    .expect("resolvable")
    .parse()
    .expect("an IP address");
    let subnet = interpolate(
        doc["networks"]["backend"]["ipam"]["config"][0]["subnet"]
            .as_str()
            .expect("the backend network has a fixed subnet"),
        &env,
    )
    .expect("resolvable");
    assert!(
        in_ipv4_subnet(nginx_ip, &subnet),
        "nginx's {nginx_ip} is outside {subnet}"
    );

    for name in ingress_services(&all) {
        let resolved = resolved_environment(service(&all, &name));
        let cmd = ingress::config::IngressConfig::command();
        let config = <ingress::config::IngressConfig as clap::Parser>::try_parse_from(as_flags(
            &cmd, &resolved,
        ))
        .unwrap_or_else(|e| panic!("{name}'s environment does not parse: {e}"));
        assert_eq!(
            config.trusted_proxies,
            [nginx_ip],
            "{name} trusts X-Forwarded-For from nginx's address, and nothing else"
        );
        let listen: SocketAddr = config
            .listen_addr
            .parse()
            .expect("LISTEN_ADDR is an address");
        assert!(
            listen.ip().is_unspecified(),
            "{name} listens on every interface of its container"
        );
        assert_ne!(
            config.crypto.master_key_id, "dev",
            "{name} does not use the development key"
        );
        let _keyring = config
            .crypto
            .keyring()
            .unwrap_or_else(|e| panic!("{name}'s keys are unusable: {e}"));
    }

    let resolved = resolved_environment(service(&all, "worker"));
    let cmd = worker::config::WorkerConfig::command();
    let config =
        <worker::config::WorkerConfig as clap::Parser>::try_parse_from(as_flags(&cmd, &resolved))
            .unwrap_or_else(|e| panic!("the worker's environment does not parse: {e}"));
    assert_ne!(
        config.crypto.master_key_id, "dev",
        "the worker does not use the development key"
    );
    let metrics: SocketAddr = config
        .metrics_addr
        .parse()
        .expect("METRICS_ADDR is an address");
    assert!(
        metrics.ip().is_unspecified(),
        "the worker's metrics are reachable from Prometheus"
    );
    let prometheus = read("observability/prometheus.yml");
    assert!(
        prometheus.contains(&format!("port: {}", metrics.port())),
        "observability/prometheus.yml scrapes the workers on port {}",
        metrics.port()
    );
}

fn in_ipv4_subnet(ip: IpAddr, subnet: &str) -> bool {
    let (net, bits) = subnet.split_once('/').expect("CIDR notation");
    let (IpAddr::V4(ip), Ok(IpAddr::V4(net)), Ok(bits)) =
        (ip, net.parse::<IpAddr>(), bits.parse::<u32>())
    else {
        return false;
    };
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

#[test]
fn compose_defaults_are_the_binaries_defaults() {
    let all = services(&compose());
    let defaults = clap_defaults();
    for (name, (_, svc)) in app_services(&all) {
        for (var, value) in environment(&svc) {
            let Ok(parts) = pieces(&value) else { continue };
            if let [
                Piece::Var {
                    name: inner,
                    op,
                    arg,
                },
            ] = parts.as_slice()
                && inner == &var
                && (op == ":-" || op == "-")
                && let Some(Some(default)) = defaults.get(&var)
            {
                assert_eq!(
                    arg, default,
                    "{name}: the compose default of {var} differs from the binary's"
                );
            }
        }
    }
    // One default per variable, and .env.example shows that same value.
    let example = env_example();
    for (var, uses) in variables_used(&compose()) {
        let shown: BTreeSet<&String> = uses
            .iter()
            .filter(|(op, _)| op == ":-" || op == "-")
            .map(|(_, default)| default)
            .collect();
        assert!(
            shown.len() <= 1,
            "${{{var}}} has different defaults: {shown:?}"
        );
        if let (Some(default), Some(value)) = (shown.first(), example.get(&var)) {
            assert_eq!(
                value, *default,
                ".env.example shows {var}={value}, the compose default is {default}"
            );
        }
    }
}

#[test]
fn urls_point_at_the_compose_services_with_the_right_users() {
    let all = services(&compose());
    let expect = |svc: &str,
                  var: &str,
                  scheme: &str,
                  host_port: &str,
                  user_var: &str,
                  password_var: &str| {
        let env = environment(service(&all, svc));
        let url = env
            .get(var)
            .unwrap_or_else(|| panic!("{svc} sets no {var}"));
        assert!(
            url.starts_with(scheme),
            "{svc}'s {var} is a {scheme} URL: {url}"
        );
        assert!(
            url.contains(&format!("@{host_port}")),
            "{svc}'s {var} points at {host_port}: {url}"
        );
        assert!(
            url.contains(&format!("${{{user_var}")),
            "{svc}'s {var} logs in as {user_var}"
        );
        assert!(
            url.contains(&format!("${{{password_var}:?")),
            "{svc}'s {var} uses {password_var}"
        );
    };
    for svc in ingress_services(&all)
        .iter()
        .map(String::as_str)
        .chain(["worker"])
    {
        expect(
            svc,
            "DATABASE_URL",
            "mysql://",
            "mariadb:3306/",
            "APP_DB_USER",
            "APP_DB_PASSWORD",
        );
        expect(
            svc,
            "AMQP_URL",
            "amqp://",
            "rabbitmq:5672/",
            "RABBITMQ_USER",
            "RABBITMQ_PASSWORD",
        );
        let redis = environment(service(&all, svc))["REDIS_URL"].clone();
        assert!(
            redis.starts_with("redis://:${REDIS_PASSWORD:?"),
            "{svc}'s REDIS_URL: {redis}"
        );
        assert!(
            redis.contains("@redis:6379"),
            "{svc}'s REDIS_URL points at redis:6379"
        );
    }
    expect(
        "migrate",
        "MIGRATION_DATABASE_URL",
        "mysql://",
        "mariadb:3306/",
        "MIGRATION_DB_USER",
        "MIGRATION_DB_PASSWORD",
    );
    // The broker user the engine logs in as is the one the rabbitmq service creates.
    let rabbitmq = environment(service(&all, "rabbitmq"));
    assert!(rabbitmq["RABBITMQ_DEFAULT_USER"].starts_with("${RABBITMQ_USER"));
    assert!(rabbitmq["RABBITMQ_DEFAULT_PASS"].starts_with("${RABBITMQ_PASSWORD:?"));
    // The database users are created by db-init from the same variables.
    let db_init = environment(service(&all, "db-init"));
    for var in [
        "APP_DB_USER",
        "APP_DB_PASSWORD",
        "MIGRATION_DB_USER",
        "MIGRATION_DB_PASSWORD",
    ] {
        assert!(
            db_init[var].starts_with(&format!("${{{var}")),
            "db-init's {var} comes from .env"
        );
    }
    // db-init grants exactly what `xyzctl grant-app-user` grants (xyzctl's APP_PRIVILEGES).
    let xyzctl_source = read("xyzctl/src/main.rs");
    let privileges = xyzctl_source
        .split("APP_PRIVILEGES: &str = \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("xyzctl/src/main.rs defines APP_PRIVILEGES");
    let script = strings(&service(&all, "db-init")["command"]).join(" ");
    assert!(
        script.contains(&format!("GRANT {privileges} ON"))
            && script.contains("REVOKE ALL PRIVILEGES"),
        "db-init gives the application user {privileges} and nothing else"
    );
}

/// The engine's broker user is no administrator and may touch only the engine's own names.
#[test]
fn the_broker_user_has_no_admin_tag_and_only_the_engines_names() {
    let all = services(&compose());
    let script = strings(&service(&all, "rabbitmq")["command"]).join(" ");
    assert!(
        !script.contains("administrator"),
        "the application user gets no management tag"
    );
    assert!(
        !script.contains("'.*'") && !script.contains("\".*\""),
        "no permission on every name"
    );
    assert!(
        script.contains(r#"names="^$${AMQP_PREFIX}\\.""#),
        "permissions anchored on the engine's prefix: {script}"
    );
    let rabbitmq = environment(service(&all, "rabbitmq"));
    assert!(rabbitmq["AMQP_PREFIX"].starts_with("${AMQP_PREFIX"));
}

#[test]
fn every_variable_is_documented_in_env_example() {
    let doc = compose();
    let documented = env_example_documented();
    let used = variables_used(&doc);
    for (name, uses) in &used {
        assert!(
            documented.contains(name),
            "docker-compose.yml uses ${{{name}}}, .env.example does not document it"
        );
        for (op, _) in uses {
            assert!(
                !op.is_empty(),
                "${{{name}}} has neither a default (:-) nor a required mark (:?): it would be empty silently"
            );
        }
    }
    for program in ["ingress", "worker", "xyzctl"] {
        for var in reads(program) {
            assert!(
                documented.contains(&var),
                "`{program}` reads {var}; .env.example does not document it"
            );
        }
    }
    for name in env_example().keys() {
        assert!(
            used.contains_key(name),
            ".env.example sets {name}, which docker-compose.yml never uses"
        );
    }
    // Each documented line carries a comment right above it.
    let text = read(".env.example");
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if !line.starts_with('#') && line.contains('=') {
            assert!(
                i > 0 && lines[i - 1].starts_with('#'),
                ".env.example: `{line}` has no comment above it"
            );
        }
    }
}

#[test]
fn no_credential_has_a_default() {
    let doc = compose();
    // ${SECRET} is always required, never defaulted.
    for (name, uses) in variables_used(&doc) {
        if is_secret_name(&name) {
            for (op, _) in uses {
                assert!(
                    op == ":?",
                    "${{{name}}} must be written ${{{name}:?…}}: no default, no silent empty"
                );
            }
        }
    }
    // No secret-looking variable or URL carries a literal value.
    let all = services(&doc);
    for (svc_name, svc) in &all {
        for (var, value) in environment(svc) {
            if is_secret_name(&var) {
                let parts = pieces(&value).expect("valid interpolation");
                assert!(
                    matches!(parts.as_slice(), [Piece::Var { op, .. }] if op == ":?"),
                    "{svc_name}: {var} must come from .env as ${{VAR:?…}}, not `{value}`"
                );
            }
        }
    }
    let mut scalars = Vec::new();
    all_scalars(&doc, &mut scalars);
    for s in &scalars {
        for (i, _) in s.match_indices("://") {
            let rest = &s[i + 3..];
            let Some(at) = rest.find('@') else { continue };
            if rest[..at].contains('/') {
                continue;
            }
            if let Some(password) = password_of(&rest[..at]) {
                assert!(
                    password.starts_with("${") && password.contains(":?"),
                    "a URL with a literal password in docker-compose.yml: {s}"
                );
            }
        }
        if s.contains("--requirepass") {
            assert!(
                s.contains("--requirepass \"$$") || s.contains("--requirepass ${"),
                "redis' password comes from the environment: {s}"
            );
        }
    }
    // .env.example ships no secret.
    for (name, value) in env_example() {
        if is_secret_name(&name) {
            assert!(
                value.is_empty(),
                ".env.example ships a value for the secret {name}"
            );
        }
    }
}

#[test]
fn workers_scale_and_only_nginx_is_published() {
    let all = services(&compose());
    for (name, svc) in &all {
        assert!(
            svc["container_name"].is_badvalue(),
            "{name} has a container_name (breaks --scale and project scoping)"
        );
    }
    let worker = service(&all, "worker");
    assert!(
        worker["ports"].is_badvalue(),
        "the worker publishes no port (--scale worker=4)"
    );
    assert!(
        worker["hostname"].is_badvalue(),
        "the worker has no fixed hostname"
    );
    for (name, svc) in &all {
        for port in strings(&svc["ports"]) {
            if name == "nginx" {
                continue;
            }
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name} publishes {port} beyond the host's loopback"
            );
        }
    }
    for name in app_services(&all).keys() {
        assert!(
            service(&all, name)["ports"].is_badvalue(),
            "{name} publishes a port; traffic goes through nginx"
        );
    }
    let nginx_ports = strings(&service(&all, "nginx")["ports"]);
    let listen = nginx_listen_port();
    assert_eq!(nginx_ports.len(), 1, "nginx publishes one port");
    assert!(
        nginx_ports[0].ends_with(&format!(":{listen}")) && nginx_ports[0].contains("${HTTP_PORT"),
        "nginx publishes ${{HTTP_PORT}} to the port nginx.conf listens on ({listen}): {}",
        nginx_ports[0]
    );
}

#[test]
fn nginx_reaches_every_ingress_by_name() {
    let all = services(&compose());
    let upstream = nginx_upstream();
    let ingresses = ingress_services(&all);
    let listed: BTreeSet<&str> = upstream.iter().map(|(h, _)| h.as_str()).collect();
    for name in &ingresses {
        assert!(
            listed.contains(name.as_str()),
            "nginx.conf's upstream does not list {name}"
        );
    }
    for (host, port) in &upstream {
        assert!(
            ingresses.contains(host),
            "nginx.conf's upstream names {host}, not an ingress service"
        );
        let listen = environment(service(&all, host))["LISTEN_ADDR"].clone();
        assert!(
            listen.ends_with(&format!(":{port}")),
            "{host} listens on {listen}, nginx expects port {port}"
        );
        let health = strings(&service(&all, host)["healthcheck"]["test"]).join(" ");
        assert!(
            health.contains(&format!("127.0.0.1:{port}/healthz")),
            "{host}'s health check: {health}"
        );
    }
    let nginx = service(&all, "nginx");
    let volumes = strings(&nginx["volumes"]);
    assert!(
        volumes
            .iter()
            .any(|v| v.starts_with("./nginx.conf:/etc/nginx/nginx.conf")),
        "nginx mounts the repository's nginx.conf: {volumes:?}"
    );
    for name in &ingresses {
        assert_eq!(
            nginx["depends_on"][name.as_str()]["condition"].as_str(),
            Some("service_healthy"),
            "nginx starts once {name} is healthy (it resolves the upstream names at start)"
        );
    }
}

#[test]
fn rabbitmq_loads_the_repository_config_and_definitions() {
    let all = services(&compose());
    let volumes = strings(&service(&all, "rabbitmq")["volumes"]);
    let definitions_path = rabbitmq_conf("definitions.local.path")
        .or_else(|| rabbitmq_conf("load_definitions"))
        .expect("rabbitmq.conf loads definitions");
    for wanted in [
        "./rabbitmq/rabbitmq.conf:/etc/rabbitmq/rabbitmq.conf".to_owned(),
        format!("./rabbitmq/definitions.json:{definitions_path}"),
    ] {
        assert!(
            volumes.iter().any(|v| v.starts_with(&wanted)),
            "rabbitmq mounts {wanted}: {volumes:?}"
        );
    }
    let image = service(&all, "rabbitmq")["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        image.contains("management"),
        "RabbitMQ with the management plugin: {image}"
    );
    let health = strings(&service(&all, "rabbitmq")["healthcheck"]["test"]).join(" ");
    assert!(
        health.contains("rabbitmq-diagnostics -q ping"),
        "rabbitmq's health check: {health}"
    );
    // Boot-time definitions stop RabbitMQ from seeding its default user, so the service must
    // create it.
    let script = strings(&service(&all, "rabbitmq")["command"]).join(" ");
    assert!(
        script.contains("add_user") && script.contains("set_permissions"),
        "rabbitmq creates the engine's user"
    );
}

#[test]
fn every_mounted_file_exists() {
    let all = services(&compose());
    for (name, svc) in &all {
        for volume in strings(&svc["volumes"]) {
            if let Some(source) = volume.strip_prefix("./") {
                let source = source.split(':').next().expect("a source path");
                assert!(
                    root().join(source).exists(),
                    "{name} mounts ./{source}, which does not exist"
                );
            }
        }
    }
}

#[test]
fn start_up_order_uses_conditions() {
    let all = services(&compose());
    for (name, svc) in &all {
        let Some(deps) = svc["depends_on"].as_hash() else {
            assert!(
                svc["depends_on"].is_badvalue(),
                "{name}: depends_on must be a mapping with conditions"
            );
            continue;
        };
        for (dep, spec) in deps {
            let dep = dep.as_str().expect("a service name");
            let target = service(&all, dep);
            let condition = spec["condition"]
                .as_str()
                .unwrap_or_else(|| panic!("{name} → {dep} has no condition"));
            match condition {
                "service_healthy" => assert!(
                    !target["healthcheck"].is_badvalue(),
                    "{name} waits for {dep} to be healthy, but {dep} has no health check"
                ),
                "service_completed_successfully" => assert_eq!(
                    target["restart"].as_str(),
                    Some("no"),
                    "{dep} is a one-shot and must not restart"
                ),
                "service_started" => assert!(
                    in_profile(svc),
                    "{name} → {dep}: wait for health, not for a start"
                ),
                other => panic!("{name} → {dep}: unknown condition {other}"),
            }
        }
    }
    let condition = |svc: &str, dep: &str| {
        service(&all, svc)["depends_on"][dep]["condition"]
            .as_str()
            .map(str::to_owned)
    };
    for svc in ingress_services(&all)
        .iter()
        .map(String::as_str)
        .chain(["worker"])
    {
        assert_eq!(
            condition(svc, "migrate").as_deref(),
            Some("service_completed_successfully"),
            "{svc} after migrate"
        );
        assert_eq!(
            condition(svc, "redis").as_deref(),
            Some("service_healthy"),
            "{svc} after redis"
        );
        assert_eq!(
            condition(svc, "rabbitmq").as_deref(),
            Some("service_healthy"),
            "{svc} after rabbitmq"
        );
    }
    assert_eq!(
        condition("migrate", "mariadb").as_deref(),
        Some("service_healthy")
    );
    for name in ["mariadb", "redis", "rabbitmq", "nginx"] {
        assert!(
            !service(&all, name)["healthcheck"].is_badvalue(),
            "{name} has a health check"
        );
    }
}

// ---- docker compose config ----------------------------------------------------------------------

/// `docker compose config -q` with a generated .env: compose's own validation of the file.
/// Needs the compose plugin, not an engine. Skipped (with the reason printed) when there is no
/// `docker` client or no compose plugin; XYZ_REQUIRE_DOCKER_COMPOSE=1 turns the skip into a
/// failure.
#[test]
fn docker_compose_accepts_the_file() {
    let required = std::env::var_os("XYZ_REQUIRE_DOCKER_COMPOSE").is_some_and(|v| v == "1");
    let skip = |reason: String| {
        assert!(!required, "XYZ_REQUIRE_DOCKER_COMPOSE=1 but {reason}");
        eprintln!("SKIPPED docker_compose_accepts_the_file: {reason}");
    };
    let version = match Command::new("docker").args(["compose", "version"]).output() {
        Err(e) => return skip(format!("no docker client ({e})")),
        Ok(out) if !out.status.success() => {
            return skip(format!(
                "the docker client has no compose plugin: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(out) => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    };
    eprintln!("using {version}");

    let dir = std::env::temp_dir().join(format!("xyz-compose-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let run = |env: &BTreeMap<String, String>| {
        let file = dir.join("test.env");
        let body: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
        std::fs::write(&file, body).expect("write the env file");
        let mut cmd = Command::new("docker");
        cmd.current_dir(root())
            .args([
                "compose",
                "-p",
                "xyz-multifinance-test",
                "-f",
                "docker-compose.yml",
                "--env-file",
            ])
            .arg(&file)
            .args(["config", "-q"]);
        // Only the env file speaks: nothing from this process's environment.
        for name in env_example_documented() {
            cmd.env_remove(name);
        }
        cmd.output().expect("run docker compose config")
    };

    let complete = generated_env();
    let ok = run(&complete);
    assert!(
        ok.status.success(),
        "docker compose config rejects the file: {}",
        String::from_utf8_lossy(&ok.stderr)
    );

    // Without the secrets (.env.example as shipped) compose must refuse to start.
    let shipped = env_example();
    let refused = run(&shipped);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !refused.status.success(),
        "docker compose accepts a .env without secrets"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("in .env"),
        "compose names the missing secret: {stderr}"
    );
}
