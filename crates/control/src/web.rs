//! The browser side served by the server itself: the JavaScript SDK (plain ES modules, no build
//! step: `switchboard.js` imports the others from the same directory) and the demo call page.
//! Embedded at compile time so the binary is self-contained.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

const INDEX_HTML: &str = include_str!("../web/index.html");
const DEMO_JS: &str = include_str!("../web/demo.js");
const DEMO_CSS: &str = include_str!("../web/demo.css");
const SDK_DTS: &str = include_str!("../web/sdk/switchboard.d.ts");
const SDK_CALLS_DTS: &str = include_str!("../web/sdk/calls.d.ts");
const SDK_ERRORS_DTS: &str = include_str!("../web/sdk/errors.d.ts");
/// The SDK's modules, by their path under `/sdk/`.
const SDK_MODULES: [(&str, &str); 12] = [
    (
        "/sdk/switchboard.js",
        include_str!("../web/sdk/switchboard.js"),
    ),
    ("/sdk/core.js", include_str!("../web/sdk/core.js")),
    ("/sdk/room.js", include_str!("../web/sdk/room.js")),
    (
        "/sdk/negotiation.js",
        include_str!("../web/sdk/negotiation.js"),
    ),
    ("/sdk/tracks.js", include_str!("../web/sdk/tracks.js")),
    ("/sdk/resume.js", include_str!("../web/sdk/resume.js")),
    ("/sdk/presence.js", include_str!("../web/sdk/presence.js")),
    ("/sdk/calls.js", include_str!("../web/sdk/calls.js")),
    ("/sdk/p2p.js", include_str!("../web/sdk/p2p.js")),
    ("/sdk/mesh.js", include_str!("../web/sdk/mesh.js")),
    ("/sdk/data.js", include_str!("../web/sdk/data.js")),
    ("/sdk/quality.js", include_str!("../web/sdk/quality.js")),
];

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
    let mut router = Router::new();
    for (path, body) in SDK_MODULES {
        router = router.route(
            path,
            get(move || async move { asset("text/javascript; charset=utf-8", body) }),
        );
    }
    router
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
            "/sdk/switchboard.d.ts",
            get(|| async { asset("application/typescript; charset=utf-8", SDK_DTS) }),
        )
        .route(
            "/sdk/calls.d.ts",
            get(|| async { asset("application/typescript; charset=utf-8", SDK_CALLS_DTS) }),
        )
        .route(
            "/sdk/errors.d.ts",
            get(|| async { asset("application/typescript; charset=utf-8", SDK_ERRORS_DTS) }),
        )
}
