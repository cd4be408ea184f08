//! The browser side served by the server itself: the JavaScript SDK (a plain ES module, no build
//! step) and the demo call page. Embedded at compile time so the binary is self-contained.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../web/index.html");
const DEMO_JS: &str = include_str!("../web/demo.js");
const DEMO_CSS: &str = include_str!("../web/demo.css");
const SDK_JS: &str = include_str!("../web/sdk/switchboard.js");
const SDK_DTS: &str = include_str!("../web/sdk/switchboard.d.ts");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
}

pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/demo.js",
            get(|| async { asset("text/javascript; charset=utf-8", DEMO_JS) }),
        )
        .route(
            "/demo.css",
            get(|| async { asset("text/css; charset=utf-8", DEMO_CSS) }),
        )
        .route(
            "/sdk/switchboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SDK_JS) }),
        )
        .route(
            "/sdk/switchboard.d.ts",
            get(|| async { asset("application/typescript; charset=utf-8", SDK_DTS) }),
        )
}
