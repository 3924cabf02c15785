//! The names of the engine's Redis keys and channels, under one deployment prefix.

/// Key names under one prefix.
#[derive(Debug, Clone)]
pub struct RedisNames {
    pub prefix: String,
    /// Named once: every claim and every worker batch uses it.
    seen: String,
}

impl RedisNames {
    pub fn new(prefix: &str) -> RedisNames {
        RedisNames {
            prefix: prefix.to_owned(),
            seen: format!("{prefix}:seen"),
        }
    }

    pub fn claim(&self, merchant: &str, endpoint: &str, external_id: &str) -> String {
        format!("{}:idem:{merchant}:{endpoint}:{external_id}", self.prefix)
    }

    pub fn status(&self, api_call_id: &str) -> String {
        format!("{}:status:{api_call_id}", self.prefix)
    }

    pub fn reply_channel(&self, ingress_id: &str) -> String {
        format!("{}:reply:{ingress_id}", self.prefix)
    }

    /// The filter of every external id ever claimed (see [`super::seen_positions`]).
    pub fn seen(&self) -> &str {
        &self.seen
    }

    /// Held by the ingress rebuilding the filter.
    pub fn seen_rebuild(&self) -> String {
        format!("{}:seen:rebuild", self.prefix)
    }

    /// A signed write without an external id, remembered for the signature's window.
    pub fn signature(&self, client_id: &str, signature: &str) -> String {
        format!("{}:sig:{client_id}:{signature}", self.prefix)
    }

    /// Where a changed API key is announced, so every ingress reloads its keys at once.
    pub fn key_changes(&self) -> String {
        format!("{}:keys", self.prefix)
    }

    pub fn rate(&self, client_id: &str) -> String {
        format!("{}:rate:{client_id}", self.prefix)
    }
}
