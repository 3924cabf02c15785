//! `/openapi.json` and the docs page: the document is a valid OpenAPI 3 document, lists exactly
//! the routes the router serves, documents the signature, the errors and the headers of SPEC,
//! and real responses match the schemas it documents.

use crate::helpers::*;
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};

pub(crate) async fn fetch_document(app: &TestApp) -> Value {
    let r = app
        .http
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status(), 200);
    let content_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    r.json().await.expect("the document is JSON")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// (METHOD, path template, operation) of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// A concrete path for a template: `/users/{user_id}/status` → `/users/X1/status`.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("X1");
            }
            '}' => in_param = false,
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

fn template_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Follows a local `$ref` (`#/a/b`), with JSON Pointer escapes.
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

fn deref<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = resolve(doc, r).unwrap_or_else(|| panic!("{r} does not resolve")),
            None => return v,
        }
    }
    panic!("$ref chain too long")
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                if k == "$ref"
                    && let Some(r) = child.as_str()
                {
                    out.push(r.to_owned());
                }
                collect_refs(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, out)),
        _ => {}
    }
}

/// The structural rules of OpenAPI 3 that a reader of this document relies on.
fn assert_valid_openapi(doc: &Value) {
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "openapi: {}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");
    assert!(doc["paths"].is_object(), "paths");
    // The typed model of utoipa reads it back whole.
    let typed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("the document reads back as OpenAPI");
    assert_eq!(
        typed.paths.paths.len(),
        doc["paths"].as_object().map_or(0, |p| p.len())
    );

    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        assert!(r.starts_with("#/components/"), "non-local $ref {r}");
        assert!(resolve(doc, r).is_some(), "$ref {r} does not resolve");
    }

    let schemes: BTreeSet<String> = doc["components"]["securitySchemes"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    for (name, scheme) in doc["components"]["securitySchemes"]
        .as_object()
        .expect("security schemes")
    {
        assert_eq!(scheme["type"], "apiKey", "{name}");
        assert_eq!(scheme["in"], "header", "{name}");
        assert!(scheme["name"].is_string(), "{name}");
    }

    let mut operation_ids = HashSet::new();
    let all = operations(doc);
    for (method, path, op) in &all {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(
            operation_ids.insert(id.to_owned()),
            "operationId {id} twice"
        );

        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(!responses.is_empty(), "{method} {path}: no responses");
        for (status, response) in responses {
            assert!(
                status == "default"
                    || (status.len() == 3
                        && (status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s))
                            || status.ends_with("XX"))),
                "{method} {path}: status {status}"
            );
            let response = deref(doc, response);
            assert!(
                response["description"].is_string(),
                "{method} {path} {status}: no description"
            );
            if let Some(content) = response.get("content") {
                for (media, body) in content.as_object().expect("content is a map") {
                    assert!(
                        body["schema"].is_object(),
                        "{method} {path} {status} {media}"
                    );
                }
            }
        }

        let mut seen = HashSet::new();
        let mut path_params = BTreeSet::new();
        for p in op["parameters"].as_array().into_iter().flatten() {
            let p = deref(doc, p);
            let (name, location) = (
                p["name"].as_str().expect("parameter name"),
                p["in"].as_str().expect("parameter in"),
            );
            assert!(
                ["path", "query", "header", "cookie"].contains(&location),
                "{method} {path}: {name} in {location}"
            );
            assert!(
                seen.insert((name.to_ascii_lowercase(), location.to_owned())),
                "{method} {path}: parameter {name} twice"
            );
            assert!(
                p["schema"].is_object(),
                "{method} {path}: {name} has no schema"
            );
            if location == "path" {
                assert_eq!(
                    p["required"], true,
                    "{method} {path}: {name} must be required"
                );
                path_params.insert(name.to_owned());
            }
        }
        let in_template: BTreeSet<String> = template_params(path).into_iter().collect();
        assert_eq!(path_params, in_template, "{method} {path}: path parameters");

        if let Some(body) = op.get("requestBody") {
            assert!(body["content"].is_object(), "{method} {path}: requestBody");
        }
        for requirement in op["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().expect("requirement").keys() {
                assert!(schemes.contains(name), "{method} {path}: scheme {name}");
            }
        }
    }
    // Links point at operations that exist.
    for (method, path, op) in &all {
        for response in op["responses"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, r)| r)
        {
            for (name, link) in deref(doc, response)["links"]
                .as_object()
                .into_iter()
                .flatten()
            {
                let target = link["operationId"].as_str().unwrap_or("");
                assert!(
                    operation_ids.contains(target),
                    "{method} {path}: link {name} to {target}"
                );
            }
        }
    }
}

/// Sends `method path` without a signature; its status.
async fn unsigned_status(app: &TestApp, method: &str, path: &str) -> u16 {
    app.http
        .request(
            method.parse().expect("method"),
            format!("{}{}", app.base, concrete(path)),
        )
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// Public operations answer without a signature; every other one refuses an unsigned request.
async fn is_public(app: &TestApp, method: &str, path: &str) -> bool {
    unsigned_status(app, method, path).await != 401
}

/// Is (method, path) served: routed to an endpoint (not 405), on a path the router knows
/// (another method there is 405, where an unknown path is 404)?
async fn is_served(app: &TestApp, method: &str, path: &str) -> bool {
    let status = if is_public(app, method, path).await {
        unsigned_status(app, method, path).await
    } else {
        let ext = (method == "POST").then(fresh_id);
        app.send(
            &app.admin,
            method,
            &concrete(path),
            ext.as_deref(),
            None,
            &[],
        )
        .await
        .status
    };
    let other = if method == "TRACE" { "PUT" } else { "TRACE" };
    let wrong = app
        .send(&app.admin, other, &concrete(path), None, None, &[])
        .await;
    status != 405 && wrong.status == 405
}

fn header_param<'a>(doc: &'a Value, op: &'a Value, name: &str) -> Option<&'a Value> {
    op["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| deref(doc, p))
        .find(|p| {
            p["in"] == "header"
                && p["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
}

fn response<'a>(doc: &'a Value, op: &'a Value, status: &str) -> Option<&'a Value> {
    op["responses"].get(status).map(|r| deref(doc, r))
}

/// Does the response's JSON schema describe the envelope (each alternative of a `oneOf`)?
fn is_envelope(doc: &Value, response: &Value) -> bool {
    is_envelope_schema(doc, &response["content"]["application/json"]["schema"])
}

fn is_envelope_schema(doc: &Value, schema: &Value) -> bool {
    let schema = deref(doc, schema);
    if let Some(alternatives) = schema["oneOf"].as_array() {
        return alternatives.iter().all(|alt| is_envelope_schema(doc, alt));
    }
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    required == BTreeSet::from(["message_action", "message_data", "api_call_id"])
}

#[sqlx::test(migrations = "../migrations")]
async fn openapi_document_is_valid_and_lists_exactly_the_routes(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let doc = fetch_document(&app).await;
    assert_valid_openapi(&doc);

    // The route table adds each route and its operation in one call; this checks the other
    // way round too: every documented operation is served, with exactly its method.
    for (method, path, _) in operations(&doc) {
        assert!(
            is_served(&app, &method, &path).await,
            "{method} {path} is documented but not served"
        );
    }

    let schemes = ingress::openapi::SECURITY_SCHEMES;
    for (method, path, op) in operations(&doc) {
        let what = format!("{method} {path}");
        if is_public(&app, &method, &path).await {
            assert!(
                op["security"].as_array().is_none_or(|s| s.is_empty()),
                "{what} is public"
            );
            continue;
        }
        let requirements = op["security"].as_array().expect("security");
        assert!(
            requirements
                .iter()
                .any(|req| schemes.iter().all(|s| req.get(*s).is_some())),
            "{what}: the signature is required"
        );
        for status in ["401", "429"] {
            let r = response(&doc, &op, status).unwrap_or_else(|| panic!("{what}: {status}"));
            assert!(is_envelope(&doc, r), "{what} {status}: the envelope");
        }
        assert!(
            response(&doc, &op, "429").expect("429")["headers"]
                .get("Retry-After")
                .is_some(),
            "{what}: 429 has Retry-After"
        );
        for (status, r) in op["responses"].as_object().expect("responses") {
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    is_envelope(&doc, deref(&doc, r)),
                    "{what} {status}: the envelope"
                );
            }
        }
        let ext = header_param(&doc, &op, "X-External-Id");
        if method == "POST" {
            let ext = ext.unwrap_or_else(|| panic!("{what}: X-External-Id"));
            assert_eq!(ext["required"], true, "{what}: X-External-Id is mandatory");
        } else if let Some(ext) = ext {
            assert_ne!(ext["required"], true, "{what}: X-External-Id is optional");
        }
    }
    for path in ["/transaction", "/payment", "/refund"] {
        let op = &doc["paths"][path]["post"];
        assert!(header_param(&doc, op, "Prefer").is_some(), "{path}: Prefer");
        let accepted = response(&doc, op, "202").expect("202");
        for h in ["Location", "Retry-After"] {
            assert!(accepted["headers"].get(h).is_some(), "{path} 202: {h}");
        }
        assert!(is_envelope(&doc, accepted));
        assert!(
            response(&doc, op, "201").is_some(),
            "{path}: 201 within Prefer: wait"
        );
    }
    let description = doc["components"]["securitySchemes"]["signature"]["description"]
        .as_str()
        .unwrap_or("");
    assert!(description.contains("HMAC-SHA256"), "{description}");
    app.shutdown().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn docs_page_is_served_with_its_assets(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let r = app
        .http
        .get(format!("{}/docs", app.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .is_ok_and(|v| v.starts_with("text/html"))
    );
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'"),
        "the page may run its own scripts: {csp}"
    );
    let html = r.text().await.expect("body");
    assert!(html.contains("swagger-ui"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing remote: {html}"
    );

    // Every asset the page links to is served from the binary.
    let mut assets: Vec<String> = html
        .split(['"', '\''])
        .filter(|s| {
            s.starts_with("./") || s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png")
        })
        .map(|s| s.trim_start_matches("./").to_owned())
        .collect();
    assets.sort();
    assets.dedup();
    assert!(
        assets.iter().any(|a| a == "swagger-ui-bundle.js"),
        "{assets:?}"
    );
    for asset in &assets {
        let r = app
            .http
            .get(format!("{}/docs/{asset}", app.base))
            .send()
            .await
            .expect("request sent");
        assert_eq!(r.status(), 200, "{asset}");
    }
    let init = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .expect("request sent")
        .text()
        .await
        .expect("body");
    assert!(
        init.contains("/openapi.json") && init.contains("HMAC"),
        "{init}"
    );

    let missing = app
        .http
        .get(format!("{}/docs/nope.js", app.base))
        .send()
        .await
        .expect("request sent");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(body["message_action"], "NOT_FOUND");
    app.shutdown().await;
}

/// A JSON Schema check of the subset the document uses, enough to catch drift between the
/// documented schemas and what the engine answers.
fn check_schema(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = deref(doc, schema);
    if let Some(alternatives) = schema["oneOf"].as_array() {
        let matching = alternatives
            .iter()
            .filter(|alt| {
                let mut e = Vec::new();
                check_schema(doc, alt, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!(
                "{at}: {matching} alternatives of oneOf match {value}"
            ));
        }
    }
    let type_ok = |t: &str| match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        _ => false,
    };
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() && !types.iter().any(|t| type_ok(t)) {
        errors.push(format!("{at}: {value} is not {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let (Some(pattern), Some(s)) = (schema["pattern"].as_str(), value.as_str()) {
        let re = regex::Regex::new(pattern).expect("pattern compiles");
        if !re.is_match(s) {
            errors.push(format!("{at}: {s:?} does not match {pattern}"));
        }
    }
    if let Some(obj) = value.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or("");
            if !obj.contains_key(name) {
                errors.push(format!("{at}: missing {name}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (k, v) in obj {
            match properties.and_then(|p| p.get(k)) {
                Some(s) => check_schema(doc, s, v, &format!("{at}.{k}"), errors),
                None if schema["additionalProperties"] == false => {
                    errors.push(format!("{at}: undocumented property {k}"));
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            check_schema(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// Checks one real answer against what the document says `method path` answers with `status`.
pub(crate) fn conforms(doc: &Value, method: &str, path: &str, r: &Resp) {
    let op = &doc["paths"][path][method.to_lowercase()];
    let documented = response(doc, op, &r.status.to_string()).unwrap_or_else(|| {
        panic!(
            "{method} {path}: {} is not documented: {}",
            r.status, r.body
        )
    });
    let schema = &documented["content"]["application/json"]["schema"];
    let mut errors = Vec::new();
    check_schema(doc, schema, &r.body, "body", &mut errors);
    assert!(
        errors.is_empty(),
        "{method} {path} {}: {errors:#?}\n{}",
        r.status,
        r.body
    );
    for header in documented["headers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(h, _)| h)
    {
        assert!(
            r.headers.contains_key(header.as_str()),
            "{method} {path} {}: {header}",
            r.status
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn real_responses_match_the_documented_schemas(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let doc = fetch_document(&app).await;

    let nik = format!("32{:014}", rand_u64() % 100_000_000_000_000);
    let body = user_body(&nik, ["1000000", "2000000", "3000000", "6000000"]);
    let created = app
        .post(&app.admin, "/create-user", &fresh_id(), &body)
        .await;
    conforms(&doc, "POST", "/create-user", &created);
    let user_id = created.data()["user_id"]
        .as_str()
        .expect("user_id")
        .to_owned();
    // The check itself sees drift: a money amount without its decimals, an undocumented field.
    let user_schema = json!({"$ref": "#/components/schemas/User"});
    for (field, value) in [("gaji", json!("12000000")), ("extra", json!(1))] {
        let mut drifted = created.data().clone();
        drifted[field] = value;
        let mut errors = Vec::new();
        check_schema(&doc, &user_schema, &drifted, "user", &mut errors);
        assert!(!errors.is_empty(), "{field} drift unnoticed");
    }
    let again = app
        .post(&app.admin, "/create-user", &fresh_id(), &body)
        .await;
    assert_eq!(again.action(), "DUPLICATE_NIK");
    conforms(&doc, "POST", "/create-user", &again);
    let invalid = app
        .post(
            &app.admin,
            "/create-user",
            &fresh_id(),
            &json!({"nik": "1"}),
        )
        .await;
    conforms(&doc, "POST", "/create-user", &invalid);

    let users = "/users/{user_id}";
    conforms(
        &doc,
        "GET",
        users,
        &app.get(&app.admin, &format!("/users/{user_id}")).await,
    );
    conforms(
        &doc,
        "GET",
        users,
        &app.get(&app.admin, "/users/USR_none").await,
    );
    conforms(
        &doc,
        "GET",
        users,
        &app.get(&app.merchant, &format!("/users/{user_id}")).await,
    );
    conforms(
        &doc,
        "GET",
        "/users/{user_id}/limits",
        &app.get(&app.merchant, &format!("/users/{user_id}/limits"))
            .await,
    );

    // A transaction: accepted, then approved within Prefer: wait, then read back.
    let bytes = transaction_body(&user_id, "1000", "100", "900", "2.5", 3).into_bytes();
    let ext = fresh_id();
    let accepted = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(&bytes),
            &[],
        )
        .await;
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    conforms(&doc, "POST", "/transaction", &accepted);
    let conflict = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(&bytes),
            &[],
        )
        .await;
    assert_eq!(conflict.status, 409, "{}", conflict.body);
    conforms(&doc, "POST", "/transaction", &conflict);
    let pending_id = accepted.body["api_call_id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.wait_final(&app.merchant, &pending_id).await;
    let status = app
        .get(&app.merchant, &format!("/status/{pending_id}"))
        .await;
    conforms(&doc, "GET", "/status/{api_call_id}", &status);

    let ext = fresh_id();
    let approved = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&ext),
            Some(&bytes),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(approved.status, 201, "{}", approved.body);
    conforms(&doc, "POST", "/transaction", &approved);
    let contract_no = approved.data()["result"]["nomor_kontrak"]
        .as_str()
        .expect("contract")
        .to_owned();
    conforms(
        &doc,
        "GET",
        "/contracts/{nomor_kontrak}",
        &app.get(&app.merchant, &format!("/contracts/{contract_no}"))
            .await,
    );
    conforms(
        &doc,
        "GET",
        "/contracts/{nomor_kontrak}",
        &app.get(&app.other_merchant, &format!("/contracts/{contract_no}"))
            .await,
    );

    let too_much = transaction_body(&user_id, "9000000", "0", "9000000", "0", 1);
    let rejected = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(too_much.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(rejected.action(), "INSUFFICIENT_LIMIT", "{}", rejected.body);
    conforms(&doc, "POST", "/transaction", &rejected);
    let nobody = transaction_body("USR_nobody", "1000", "0", "1000", "0", 1);
    let not_found = app
        .send(
            &app.merchant,
            "POST",
            "/transaction",
            Some(&fresh_id()),
            Some(nobody.as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(not_found.action(), "USER_NOT_FOUND", "{}", not_found.body);
    conforms(&doc, "POST", "/transaction", &not_found);

    // A partial payment, then one too many.
    let pay = |amount: &str| json!({"nomor_kontrak": contract_no, "jumlah": amount});
    let paid = app
        .send(
            &app.admin,
            "POST",
            "/payment",
            Some(&fresh_id()),
            Some(pay("100").to_string().as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(paid.status, 201, "{}", paid.body);
    conforms(&doc, "POST", "/payment", &paid);
    let over = app
        .send(
            &app.admin,
            "POST",
            "/payment",
            Some(&fresh_id()),
            Some(pay("999999").to_string().as_bytes()),
            &[("Prefer", "wait=20")],
        )
        .await;
    assert_eq!(over.action(), "OVERPAYMENT", "{}", over.body);
    conforms(&doc, "POST", "/payment", &over);
    conforms(
        &doc,
        "POST",
        "/payment",
        &app.post(&app.merchant, "/payment", &fresh_id(), &pay("1"))
            .await,
    );

    let billings = "/users/{user_id}/billings";
    let page = app
        .get(&app.admin, &format!("/users/{user_id}/billings?limit=2"))
        .await;
    assert!(page.data()["next_cursor"].is_string(), "{}", page.body);
    conforms(&doc, "GET", billings, &page);
    conforms(
        &doc,
        "GET",
        billings,
        &app.get(
            &app.admin,
            &format!("/users/{user_id}/billings?cursor=forged"),
        )
        .await,
    );
    let bills = app
        .get(&app.admin, &format!("/users/{user_id}/bills"))
        .await;
    assert_eq!(
        bills.data()["items"].as_array().map(Vec::len),
        Some(1),
        "{}",
        bills.body
    );
    conforms(&doc, "GET", "/users/{user_id}/bills", &bills);

    // A partial refund, one beyond what is refundable, one of an unknown contract, and the
    // contract they leave.
    let refund = |nomor: &str, amount: &str| json!({"nomor_kontrak": nomor, "jumlah": amount, "alasan": "barang dikembalikan"});
    for (nomor, amount, action) in [
        (contract_no.as_str(), "50", "SUCCESS"),
        (contract_no.as_str(), "999999", "REFUND_EXCEEDS"),
        ("KTR_nope", "1", "CONTRACT_NOT_FOUND"),
    ] {
        let r = app
            .send(
                &app.merchant,
                "POST",
                "/refund",
                Some(&fresh_id()),
                Some(refund(nomor, amount).to_string().as_bytes()),
                &[("Prefer", "wait=20")],
            )
            .await;
        assert_eq!(r.action(), action, "{}", r.body);
        conforms(&doc, "POST", "/refund", &r);
    }
    conforms(
        &doc,
        "POST",
        "/refund",
        &app.post(&app.merchant, "/refund", &fresh_id(), &json!({"jumlah": 1}))
            .await,
    );
    let refunded = app
        .get(&app.merchant, &format!("/contracts/{contract_no}"))
        .await;
    assert_eq!(
        refunded.data()["total_refund"],
        "50.00",
        "{}",
        refunded.body
    );
    conforms(&doc, "GET", "/contracts/{nomor_kontrak}", &refunded);
    let limits = format!("/users/{user_id}/limits");
    for (body, action) in [
        (&br#"{"limit_sixth": 7000000}"#[..], "SUCCESS"),
        (
            br#"{"limit_one_month": 0, "limit_three_month": 0}"#,
            "LIMIT_BELOW_USED",
        ),
        (b"{}", "INVALID_MANDATORY"),
    ] {
        let r = app
            .send(&app.admin, "PATCH", &limits, None, Some(body), &[])
            .await;
        assert_eq!(r.action(), action, "{}", r.body);
        conforms(&doc, "PATCH", "/users/{user_id}/limits", &r);
    }
    let changes = app
        .get(&app.admin, &format!("/users/{user_id}/limit-changes"))
        .await;
    assert_eq!(changes.data()["items"].as_array().map(Vec::len), Some(1));
    conforms(&doc, "GET", "/users/{user_id}/limit-changes", &changes);

    let locked = app
        .send(
            &app.admin,
            "PATCH",
            &format!("/users/{user_id}/status"),
            None,
            Some(br#"{"user_status":"LOCK"}"#),
            &[],
        )
        .await;
    conforms(&doc, "PATCH", "/users/{user_id}/status", &locked);
    assert_eq!(locked.data()["user_status"], "LOCK");

    let by_external_id = app
        .get(&app.merchant, "/status?external_id=never-used")
        .await;
    assert_eq!(by_external_id.action(), "NOT_FOUND");
    conforms(&doc, "GET", "/status", &by_external_id);
    let unsigned = app
        .http
        .get(format!("{}/status/{pending_id}", app.base))
        .send()
        .await
        .expect("request sent");
    conforms(
        &doc,
        "GET",
        "/status/{api_call_id}",
        &TestApp::read(unsigned).await,
    );
    let health = app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .expect("request sent");
    conforms(&doc, "GET", "/healthz", &TestApp::read(health).await);
    let ready = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .expect("request sent");
    conforms(&doc, "GET", "/readyz", &TestApp::read(ready).await);
    app.shutdown().await;
}

/// The served document is the committed `openapi.json` at the repository root, so a change
/// to the API shows up in review. To regenerate it after an intended change:
/// `UPDATE_OPENAPI=1 cargo nextest run -p ingress -E 'test(the_committed_openapi_json)'`.
#[sqlx::test(migrations = "../migrations")]
async fn the_served_document_is_the_committed_openapi_json(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let served = fetch_document(&app).await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi.json");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        let text = serde_json::to_string_pretty(&served).expect("the document serializes");
        std::fs::write(&path, text + "\n").expect("openapi.json written");
    }
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).expect("openapi.json at the repository root"),
    )
    .expect("openapi.json is JSON");
    assert!(
        committed == served,
        "the served OpenAPI document differs from openapi.json; if the change is intended, \
         regenerate it with UPDATE_OPENAPI=1 (see this test's comment) and commit it"
    );
    app.shutdown().await;
}

/// The docs page signs "Try it out" requests with the secret entered under Authorize. In a
/// browser without WebCrypto it must refuse, never send the secret as the signature header.
/// (Runs the served script in Node.js with a `window` that has no WebCrypto.)
#[sqlx::test(migrations = "../migrations")]
async fn the_docs_page_never_sends_the_secret_without_webcrypto(pool: sqlx::MySqlPool) {
    let app = spawn_app(pool).await;
    let script = app
        .http
        .get(format!("{}/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .expect("request sent")
        .text()
        .await
        .expect("the script");
    let harness = format!(
        r#"const window = {{ alert: () => {{}} }};
{script}
const req = {{ method: "GET", url: "http://localhost/users/U1", headers: {{ "X-Client-Id": "ck_1", "X-Signature": "THE-SECRET" }} }};
signRequest(req).then(
  (r) => {{ console.log(JSON.stringify({{ sent: true, headers: r.headers }})); }},
  () => {{ console.log(JSON.stringify({{ sent: false, headers: req.headers }})); }},
);"#
    );
    let out = std::process::Command::new("node")
        .args(["-e", &harness])
        .output()
        .expect("node runs (Debian's nodejs; scripts/test.sh needs it for newman too)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "node printed {stdout} {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(result["sent"], false, "{result}");
    assert!(!result.to_string().contains("THE-SECRET"), "{result}");
    app.shutdown().await;
}
