//! The nodes of a clustered service (RabbitMQ, Galera), as `AMQP_URL` and `DATABASE_URL` list
//! them: URLs separated by commas, tried in the order given. One URL is a list of one and
//! behaves as a plain URL always did.
//!
//! A comma inside a URL (a password with one) is written `%2C`: both clients percent-decode
//! the user and password, and an unescaped comma would split the URL in two.

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

/// A non-empty list of URLs of one service, in the order to try them.
#[derive(Clone, PartialEq, Eq)]
pub struct Nodes {
    urls: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodesError {
    #[error("no URL given")]
    Empty,
    #[error(
        "URL {position} of the list is empty (URLs are separated by commas; a comma inside a URL is written %2C)"
    )]
    EmptyEntry { position: usize },
    #[error("URL {position} of the list is not a URL: {reason}")]
    NotAUrl { position: usize, reason: String },
    #[error("one node's URL is expected here, not a list of {count}")]
    NotOne { count: usize },
}

impl FromStr for Nodes {
    type Err = NodesError;

    fn from_str(s: &str) -> Result<Nodes, NodesError> {
        if s.trim().is_empty() {
            return Err(NodesError::Empty);
        }
        let urls = s
            .split(',')
            .map(str::trim)
            .enumerate()
            .map(|(i, url)| {
                let position = i + 1;
                if url.is_empty() {
                    return Err(NodesError::EmptyEntry { position });
                }
                url::Url::parse(url).map_err(|e| NodesError::NotAUrl {
                    position,
                    reason: e.to_string(),
                })?;
                Ok(url.to_owned())
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Nodes { urls })
    }
}

impl Nodes {
    /// How many nodes there are (at least one).
    pub fn count(&self) -> usize {
        self.urls.len()
    }

    /// The URL of node `index` (counted around the list).
    pub fn url(&self, index: usize) -> &str {
        &self.urls[index % self.urls.len()]
    }

    /// Node `index` as logs may show it: host and port, never the user or password.
    pub fn label(&self, index: usize) -> String {
        match url::Url::parse(self.url(index)) {
            Ok(u) => match (u.host_str(), u.port()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => format!("node {}", index % self.urls.len()),
            },
            Err(_) => format!("node {}", index % self.urls.len()),
        }
    }

    /// Every node once, starting with `start` and going around the list.
    pub fn round_from(&self, start: usize) -> impl Iterator<Item = usize> + use<> {
        let n = self.urls.len();
        (0..n).map(move |i| (start + i) % n)
    }

    /// Runs `attempt` on each node (its index) in turn from `start`, each try bounded by
    /// `timeout`, until one succeeds: that result and its node. Else the last node's error. A node that does
    /// not answer (a host gone without a reset) costs `timeout`, not the system's TCP timeout.
    pub async fn first_answering<T, E, F, Fut>(
        &self,
        start: usize,
        timeout: Duration,
        what: &str,
        mut attempt: F,
    ) -> Result<(T, usize), E>
    where
        F: FnMut(usize) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + From<std::io::Error>,
    {
        let mut last = None;
        for index in self.round_from(start) {
            let result = match tokio::time::timeout(timeout, attempt(index)).await {
                Ok(r) => r,
                Err(_) => Err(E::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {timeout:?}"),
                ))),
            };
            match result {
                Ok(t) => return Ok((t, index)),
                Err(e) => {
                    if self.count() > 1 {
                        tracing::warn!(node = index, host = %self.label(index), error = %e, "{what} node unavailable; trying the next");
                    }
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| E::from(std::io::Error::other("no node in the list"))))
    }
}

/// Reads a node list for `clap`, in whose errors the value never appears (clap's own
/// `invalid value '…'` would print the passwords).
#[derive(Debug, Clone, Copy)]
pub struct NodesParser {
    single: bool,
}

impl NodesParser {
    /// Any number of nodes.
    pub fn list() -> NodesParser {
        NodesParser { single: false }
    }

    /// Exactly one node (a URL that must not be a list).
    pub fn single() -> NodesParser {
        NodesParser { single: true }
    }

    fn read(self, value: &str) -> Result<Nodes, NodesError> {
        let nodes: Nodes = value.parse()?;
        if self.single && nodes.count() > 1 {
            return Err(NodesError::NotOne {
                count: nodes.count(),
            });
        }
        Ok(nodes)
    }
}

impl clap::builder::TypedValueParser for NodesParser {
    type Value = Nodes;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<Nodes, clap::Error> {
        let name = arg
            .and_then(|a| a.get_env().map(|e| e.to_string_lossy().into_owned()))
            .or_else(|| arg.map(ToString::to_string))
            .unwrap_or_default();
        let parsed = value
            .to_str()
            .ok_or_else(|| "not UTF-8".to_owned())
            .and_then(|v| self.read(v).map_err(|e| e.to_string()));
        parsed.map_err(|why| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{name}: {why}\n"),
            )
            .with_cmd(cmd)
        })
    }
}

/// The hosts only, as logs may show them.
impl fmt::Display for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for i in 0..self.count() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(&self.label(i))?;
        }
        Ok(())
    }
}

/// The hosts only: a configuration printed with `{:?}` shows no password.
impl fmt::Debug for Nodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries((0..self.count()).map(|i| self.label(i)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Nodes, NodesError> {
        s.parse()
    }

    #[test]
    fn a_single_url_is_a_list_of_one() {
        let nodes = parse("amqp://guest:guest@127.0.0.1:5672/%2f").expect("parses");
        assert_eq!(nodes.count(), 1);
        assert_eq!(nodes.url(0), "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(nodes.url(1), nodes.url(0));
        assert_eq!(nodes.round_from(5).collect::<Vec<_>>(), [0]);
    }

    #[test]
    fn urls_keep_their_order_and_lose_the_spaces_around_them() {
        let nodes = parse(
            " mysql://app:p%2Cw@db1:3306/xyz ,mysql://app:p%2Cw@db2:3306/xyz,\tmysql://app:p%2Cw@db3/xyz ",
        )
        .expect("parses");
        assert_eq!(nodes.count(), 3);
        assert_eq!(nodes.url(0), "mysql://app:p%2Cw@db1:3306/xyz");
        assert_eq!(nodes.url(1), "mysql://app:p%2Cw@db2:3306/xyz");
        assert_eq!(nodes.url(2), "mysql://app:p%2Cw@db3/xyz");
    }

    #[test]
    fn an_empty_entry_is_a_configuration_error_naming_its_place() {
        assert_eq!(parse(""), Err(NodesError::Empty));
        assert_eq!(parse("  "), Err(NodesError::Empty));
        assert_eq!(
            parse("amqp://a/%2f,,amqp://b/%2f"),
            Err(NodesError::EmptyEntry { position: 2 })
        );
        assert_eq!(
            parse("amqp://a/%2f,"),
            Err(NodesError::EmptyEntry { position: 2 })
        );
        assert_eq!(
            parse(",amqp://a/%2f"),
            Err(NodesError::EmptyEntry { position: 1 })
        );
        assert!(matches!(
            parse("amqp://a/%2f,not a url"),
            Err(NodesError::NotAUrl { position: 2, .. })
        ));
    }

    #[test]
    fn an_unescaped_comma_in_a_password_splits_the_url() {
        // Documented: such a comma is written %2C.
        assert!(parse("mysql://app:p,w@db1/xyz").is_err());
        assert!(parse("mysql://app:p%2Cw@db1/xyz").is_ok());
    }

    #[test]
    fn a_single_node_parser_refuses_a_list_and_no_error_shows_the_value() {
        use clap::builder::TypedValueParser;
        let cmd = clap::Command::new("test");
        let arg = clap::Arg::new("url").env("SOME_URL");
        let parse =
            |parser: NodesParser, v: &str| parser.parse_ref(&cmd, Some(&arg), OsStr::new(v));
        assert_eq!(
            parse(NodesParser::single(), "mysql://root:secret@a/xyz")
                .map(|n| n.count())
                .ok(),
            Some(1)
        );
        assert_eq!(
            parse(
                NodesParser::list(),
                "mysql://root:secret@a/xyz,mysql://root:secret@b/xyz"
            )
            .map(|n| n.count())
            .ok(),
            Some(2)
        );
        for (parser, bad) in [
            (
                NodesParser::single(),
                "mysql://root:secret@a/xyz,mysql://root:secret@b/xyz",
            ),
            (NodesParser::list(), "mysql://root:secret@a/xyz,,"),
            (NodesParser::list(), "mysql://root:secret@a:port/xyz"),
        ] {
            let shown = parse(parser, bad).expect_err("refused").to_string();
            assert!(shown.contains("SOME_URL"), "{shown}");
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn labels_name_the_host_and_never_the_password() {
        let nodes = parse("amqp://guest:secret@10.0.0.1:5672/%2f,mysql://root:secret@db2/xyz")
            .expect("parses");
        assert_eq!(nodes.label(0), "10.0.0.1:5672");
        assert_eq!(nodes.label(1), "db2");
        let shown = format!("{nodes:?} {nodes}");
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(nodes.to_string(), "10.0.0.1:5672,db2");
    }

    #[test]
    fn every_node_is_tried_once_from_any_start() {
        let nodes = parse("amqp://a,amqp://b,amqp://c").expect("parses");
        assert_eq!(nodes.round_from(0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(nodes.round_from(2).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(nodes.round_from(4).collect::<Vec<_>>(), [1, 2, 0]);
    }

    #[tokio::test]
    async fn the_first_node_that_answers_is_taken_after_the_ones_that_fail() {
        let nodes = parse("amqp://a,amqp://b,amqp://c").expect("parses");
        let mut tried = Vec::new();
        let got: Result<(String, usize), std::io::Error> = nodes
            .first_answering(2, Duration::from_secs(1), "test", |node| {
                let url = nodes.url(node).to_owned();
                tried.push(url.clone());
                async move {
                    if url == "amqp://c" {
                        Err(std::io::Error::other("down"))
                    } else {
                        Ok(url)
                    }
                }
            })
            .await;
        assert_eq!(got.expect("a answers").1, 0);
        assert_eq!(tried, ["amqp://c", "amqp://a"]);
        let none: Result<((), usize), std::io::Error> = nodes
            .first_answering(2, Duration::from_millis(10), "test", |_| {
                std::future::pending()
            })
            .await;
        assert_eq!(
            none.expect_err("nobody answers").kind(),
            std::io::ErrorKind::TimedOut
        );
    }
}
