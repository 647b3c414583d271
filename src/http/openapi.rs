//! `GET /openapi.json`, generated from the route table below, which lists each route once
//! with its method, auth and answers. A test walks the table against the live router so
//! the two cannot drift apart.

use serde_json::{json, Map, Value};

/// How a route is authorized.
#[derive(Clone, Copy)]
pub enum Auth {
    None,
    ApiKey,
    ApiKeyOrClientSecret,
    Signature,
    /// `TILL_METRICS_TOKEN` when it is set; open otherwise.
    MetricsToken,
}

/// Answers every route may give: rate limited (with `TILL_RATE_LIMIT_PER_SEC`), a URI or
/// headers over Till's limits.
const EVERY_ROUTE: &[u16] = &[414, 429, 431];

pub struct RouteDoc {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    /// Success status and the error statuses this route answers.
    pub responses: &'static [u16],
}

pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "put",
        path: "/v1/products/{sku}",
        summary: "Create or update a product",
        auth: Auth::ApiKey,
        responses: &[200, 400, 401, 413, 503],
    },
    RouteDoc {
        method: "get",
        path: "/v1/products/{sku}",
        summary: "Read a product",
        auth: Auth::ApiKey,
        responses: &[200, 401, 404, 503],
    },
    RouteDoc {
        method: "put",
        path: "/v1/inventory/{sku}/warehouses/{warehouse}",
        summary: "Set on-hand stock in a warehouse",
        auth: Auth::ApiKey,
        responses: &[200, 400, 401, 404, 409, 413, 503],
    },
    RouteDoc {
        method: "get",
        path: "/v1/inventory/{sku}",
        summary: "Stock of a SKU over all warehouses",
        auth: Auth::ApiKey,
        responses: &[200, 401, 404, 503],
    },
    RouteDoc {
        method: "post",
        path: "/v1/orders",
        summary: "Start a checkout: price the items and lock stock",
        auth: Auth::ApiKey,
        responses: &[201, 400, 401, 409, 413, 422, 429, 503],
    },
    RouteDoc {
        method: "get",
        path: "/v1/orders/{id}",
        summary: "Read an order",
        auth: Auth::ApiKeyOrClientSecret,
        responses: &[200, 401, 404, 503],
    },
    RouteDoc {
        method: "post",
        path: "/v1/orders/{id}/payments",
        summary: "Pay for a pending order (Idempotency-Key required)",
        auth: Auth::ApiKeyOrClientSecret,
        responses: &[201, 400, 401, 404, 409, 413, 422, 503],
    },
    RouteDoc {
        method: "post",
        path: "/v1/orders/{id}/cancel",
        summary: "Cancel a pending order",
        auth: Auth::ApiKeyOrClientSecret,
        responses: &[200, 400, 401, 404, 409, 413, 422, 503],
    },
    RouteDoc {
        method: "post",
        path: "/v1/orders/{id}/refunds",
        summary: "Refund part or all of a paid order",
        auth: Auth::ApiKey,
        responses: &[201, 400, 401, 404, 409, 413, 422, 503],
    },
    RouteDoc {
        method: "post",
        path: "/v1/webhooks/{gateway}",
        summary: "A gateway's signed callback",
        auth: Auth::Signature,
        responses: &[200, 400, 404, 413, 503],
    },
    RouteDoc {
        method: "post",
        path: "/inventory/lock",
        summary: "Seed: lock stock for a client-chosen order id",
        auth: Auth::ApiKey,
        responses: &[201, 400, 401, 409, 413, 422, 429, 503],
    },
    RouteDoc {
        method: "post",
        path: "/payment/initiate",
        summary: "Seed: pay with a decimal amount",
        auth: Auth::ApiKeyOrClientSecret,
        responses: &[201, 400, 401, 404, 409, 413, 422, 503],
    },
    RouteDoc {
        method: "post",
        path: "/checkout/confirm",
        summary: "Seed: confirm a paid order",
        auth: Auth::ApiKeyOrClientSecret,
        responses: &[200, 400, 401, 404, 409, 413, 422, 503],
    },
    RouteDoc {
        method: "get",
        path: "/healthz",
        summary: "The process is up",
        auth: Auth::None,
        responses: &[200],
    },
    RouteDoc {
        method: "get",
        path: "/readyz",
        summary: "The database answers",
        auth: Auth::None,
        responses: &[200, 503],
    },
    RouteDoc {
        method: "get",
        path: "/metrics",
        summary: "Prometheus metrics (text/plain)",
        auth: Auth::MetricsToken,
        responses: &[200, 401],
    },
    RouteDoc {
        method: "get",
        path: "/openapi.json",
        summary: "This document",
        auth: Auth::None,
        responses: &[200],
    },
];

fn describe(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "invalid_request",
        401 => "unauthorized",
        404 => "not_found",
        409 => {
            "conflict: out_of_stock, order_not_payable, idempotency_key_in_use, amount_mismatch, stock_below_locked or order_exists"
        }
        413 => "payload_too_large",
        414 => "uri_too_long",
        422 => "idempotency_key_reused",
        429 => "rate_limited, or too_many_pending_orders where a checkout starts",
        431 => "headers_too_large",
        503 => "unavailable",
        _ => "see docs/api.md",
    }
}

/// The success answer's content: Prometheus text for `/metrics`, JSON everywhere else.
fn success_content(path: &str) -> Value {
    if path == "/metrics" {
        json!({"text/plain": {"schema": {"type": "string"}}})
    } else {
        json!({"application/json": {"schema": {"type": "object"}}})
    }
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for route in ROUTES {
        let responses: Map<String, Value> = route
            .responses
            .iter()
            .chain(EVERY_ROUTE)
            .map(|s| {
                let content = if *s >= 400 {
                    json!({"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}})
                } else {
                    success_content(route.path)
                };
                (
                    s.to_string(),
                    json!({"description": describe(*s), "content": content}),
                )
            })
            .collect();
        let mut params: Vec<Value> = route
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let security = match route.auth {
            Auth::None | Auth::Signature => json!([]),
            Auth::ApiKey => json!([{"apiKey": []}]),
            Auth::ApiKeyOrClientSecret => json!([{"apiKey": []}, {"clientSecret": []}]),
            Auth::MetricsToken => json!([{}, {"metricsToken": []}]),
        };
        if route.method == "post" && !matches!(route.auth, Auth::Signature) {
            let required = route.path.ends_with("/payments");
            params.push(
                json!({"name": "Idempotency-Key", "in": "header", "required": required,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255}}),
            );
        }
        let mut op = json!({"summary": route.summary, "parameters": params, "responses": responses, "security": security});
        if route.method == "post" || route.method == "put" {
            op["requestBody"] =
                json!({"content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}));
        entry[route.method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "Till", "version": env!("CARGO_PKG_VERSION"), "description": "A checkout engine. Money is integer minor units."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer", "description": "TILL_API_KEY"},
                "clientSecret": {"type": "http", "scheme": "bearer", "description": "an order's client_secret; grants that order alone"},
                "metricsToken": {"type": "http", "scheme": "bearer", "description": "TILL_METRICS_TOKEN, when set"}
            },
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}
        }
    })
}
