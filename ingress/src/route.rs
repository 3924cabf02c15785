//! The route table: every endpoint, its method, and who may call it. Routing is done here
//! rather than by the framework so SPEC §3's order of checks (signature before route, route
//! before role) reads top to bottom in `pipeline.rs`.

use shared::db::keys::Role;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Docs,
    /// A static asset of the docs page (`/docs/swagger-ui.css`, …).
    DocsAsset(String),
    CreateUser,
    GetUser(String),
    SetUserStatus(String),
    UserLimits(String),
    UserBillings(String),
    UserBills(String),
    Transaction,
    Payment,
    Status(String),
    Contract(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed,
}

/// (method, path pattern) of every endpoint; `{}` is one path segment. Used by the router and
/// by the tests that check the OpenAPI document lists exactly these.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/{}"),
    ("POST", "/create-user"),
    ("GET", "/users/{}"),
    ("PATCH", "/users/{}/status"),
    ("GET", "/users/{}/limits"),
    ("GET", "/users/{}/billings"),
    ("GET", "/users/{}/bills"),
    ("POST", "/transaction"),
    ("POST", "/payment"),
    ("GET", "/status/{}"),
    ("GET", "/contracts/{}"),
];

impl Route {
    /// Matches a path (without the query) and a method.
    pub fn parse(method: &str, path: &str) -> Result<Route, RouteError> {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let matched: Option<(&str, Route)> = match segments.as_slice() {
            ["healthz"] => Some(("GET", Route::Healthz)),
            ["readyz"] => Some(("GET", Route::Readyz)),
            ["metrics"] => Some(("GET", Route::Metrics)),
            ["openapi.json"] => Some(("GET", Route::OpenApi)),
            ["docs"] => Some(("GET", Route::Docs)),
            ["docs", file] if !file.is_empty() => {
                Some(("GET", Route::DocsAsset((*file).to_owned())))
            }
            ["create-user"] => Some(("POST", Route::CreateUser)),
            ["transaction"] => Some(("POST", Route::Transaction)),
            ["payment"] => Some(("POST", Route::Payment)),
            ["users", id] if !id.is_empty() => Some(("GET", Route::GetUser((*id).to_owned()))),
            ["users", id, "status"] if !id.is_empty() => {
                Some(("PATCH", Route::SetUserStatus((*id).to_owned())))
            }
            ["users", id, "limits"] if !id.is_empty() => {
                Some(("GET", Route::UserLimits((*id).to_owned())))
            }
            ["users", id, "billings"] if !id.is_empty() => {
                Some(("GET", Route::UserBillings((*id).to_owned())))
            }
            ["users", id, "bills"] if !id.is_empty() => {
                Some(("GET", Route::UserBills((*id).to_owned())))
            }
            ["status", id] if !id.is_empty() => Some(("GET", Route::Status((*id).to_owned()))),
            ["contracts", id] if !id.is_empty() => Some(("GET", Route::Contract((*id).to_owned()))),
            _ => None,
        };
        match matched {
            Some((m, route)) if m == method => Ok(route),
            Some(_) => Err(RouteError::MethodNotAllowed),
            None => Err(RouteError::NotFound),
        }
    }

    /// Unauthenticated and not audited.
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            Route::Healthz
                | Route::Readyz
                | Route::Metrics
                | Route::OpenApi
                | Route::Docs
                | Route::DocsAsset(_)
        )
    }

    /// The route's pattern: a metrics label of bounded cardinality.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Metrics => "/metrics",
            Route::OpenApi => "/openapi.json",
            Route::Docs => "/docs",
            Route::DocsAsset(_) => "/docs/{file}",
            Route::CreateUser => "/create-user",
            Route::GetUser(_) => "/users/{id}",
            Route::SetUserStatus(_) => "/users/{id}/status",
            Route::UserLimits(_) => "/users/{id}/limits",
            Route::UserBillings(_) => "/users/{id}/billings",
            Route::UserBills(_) => "/users/{id}/bills",
            Route::Transaction => "/transaction",
            Route::Payment => "/payment",
            Route::Status(_) => "/status/{id}",
            Route::Contract(_) => "/contracts/{id}",
        }
    }

    pub fn allows(&self, role: Role) -> bool {
        match role {
            Role::Admin => true,
            Role::Merchant => matches!(
                self,
                Route::UserLimits(_) | Route::Transaction | Route::Status(_) | Route::Contract(_)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_route_parses() {
        for (method, pattern) in ROUTES {
            let path = pattern.replace("{}", "X1");
            assert!(Route::parse(method, &path).is_ok(), "{method} {path}");
        }
    }

    #[test]
    fn wrong_method_and_unknown_path() {
        assert_eq!(
            Route::parse("GET", "/transaction"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(
            Route::parse("DELETE", "/users/U1"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(Route::parse("GET", "/nope"), Err(RouteError::NotFound));
        assert_eq!(Route::parse("GET", "/docs/"), Err(RouteError::NotFound));
        assert_eq!(
            Route::parse("POST", "/openapi.json"),
            Err(RouteError::MethodNotAllowed)
        );
        assert_eq!(Route::parse("GET", "/users/"), Err(RouteError::NotFound));
        assert_eq!(
            Route::parse("GET", "/users/a/b/c"),
            Err(RouteError::NotFound)
        );
        assert_eq!(
            Route::parse("GET", "/transaction/"),
            Err(RouteError::NotFound)
        );
    }

    #[test]
    fn merchants_may_only_submit_and_read_their_own() {
        assert!(Route::Transaction.allows(Role::Merchant));
        assert!(Route::UserLimits("u".into()).allows(Role::Merchant));
        assert!(!Route::Payment.allows(Role::Merchant));
        assert!(!Route::CreateUser.allows(Role::Merchant));
        assert!(!Route::GetUser("u".into()).allows(Role::Merchant));
        assert!(!Route::UserBillings("u".into()).allows(Role::Merchant));
        assert!(Route::Payment.allows(Role::Admin));
    }
}
