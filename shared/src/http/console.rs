//! The web console's pages: a few static files compiled into the binary,
//! served under `/console/` by the admin Lambda and `authctl serve`.
//!
//! Every console response, errors included, carries the same security
//! headers ([`secure`]): a CSP that lets the page load and call only its own
//! origin, framed only by [`AdminPolicy::console_frame_ancestors`]. Files
//! are validated with a strong ETag (the SHA-256 of the file, computed once)
//! under `Cache-Control: no-cache`, so a deploy is seen at the next load.

use std::sync::LazyLock;

use lambda_http::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
    LOCATION, PRAGMA, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
};
use lambda_http::http::{HeaderMap, HeaderValue, Method, StatusCode};
use lambda_http::{Body, Response};
use sha2::{Digest, Sha256};

use crate::config::AdminPolicy;
use crate::http::error::ApiError;

/// Where the console's paths start, after any stage prefix.
pub const PREFIX: &str = "/console";

/// One file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    text: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// A file of shared/console/, compiled in.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            text: include_str!(concat!("../../console/", $name)),
        }
    };
}

/// The files, the page first. They are all text: a Lambda answers text as
/// is, where binary would need API Gateway's binary media types.
static ASSETS: [Asset; 5] = [
    asset!("index.html", HTML),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("console.css", CSS),
];

/// The page, which both `/console/` and the portal's `/console/portal` show.
const INDEX: usize = 0;

/// Each asset's strong ETag, in the order of [`ASSETS`].
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", hex::encode(Sha256::digest(a.text.as_bytes()))))
        .collect()
});

/// What a console path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// `.../console`: the same page one level down, `.../console/`.
    Redirect,
    /// One of the files, by its index in [`ASSETS`].
    Asset(usize),
    /// Anything else below `.../console/`.
    Missing,
}

impl Page {
    /// The console page `path` names, if it is a console path: what follows
    /// its first `console` segment, so a stage or URL prefix before it is
    /// allowed. Split into segments, never sliced, so any text gets an answer.
    pub(crate) fn of(path: &str) -> Option<Self> {
        let mut segments = path.split('/');
        segments.position(|s| s == "console")?;
        let rest: Vec<&str> = segments.collect();
        Some(match rest.as_slice() {
            [] => Self::Redirect,
            [""] | ["portal"] => Self::Asset(INDEX),
            [name] => ASSETS
                .iter()
                .position(|a| a.name == *name)
                .map_or(Self::Missing, Self::Asset),
            _ => Self::Missing,
        })
    }
}

/// The answer to a GET or HEAD of `path`, a console path: a file, its 304,
/// the redirect, or 404. Without [`secure`]'s headers, which every console
/// response gets.
pub(crate) fn answer(
    path: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Response<Body>, ApiError> {
    match Page::of(path) {
        None | Some(Page::Missing) => Err(ApiError::NotFound),
        Some(Page::Redirect) => {
            let mut response = empty(StatusCode::PERMANENT_REDIRECT);
            // Relative to the path asked for, whose last segment is
            // `console`: it resolves behind any stage or URL prefix.
            response
                .headers_mut()
                .insert(LOCATION, HeaderValue::from_static("console/"));
            Ok(response)
        }
        Some(Page::Asset(index)) => {
            let (Some(asset), Some(etag)) = (ASSETS.get(index), ETAGS.get(index)) else {
                return Err(ApiError::NotFound);
            };
            let tag = HeaderValue::from_str(etag).ok();
            if unchanged(headers, etag) {
                let mut response = empty(StatusCode::NOT_MODIFIED);
                if let Some(tag) = tag {
                    response.headers_mut().insert(ETAG, tag);
                }
                return Ok(response);
            }
            let mut response = if method == Method::HEAD {
                empty(StatusCode::OK)
            } else {
                Response::new(Body::Text(asset.text.to_owned()))
            };
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(asset.text.len()));
            if let Some(tag) = tag {
                headers.insert(ETAG, tag);
            }
            Ok(response)
        }
    }
}

/// Adds the console's security and caching headers to `headers`, with
/// `frame-ancestors` from `admin`. Replaces the JSON responses' `no-store`:
/// a console error holds no token.
pub(crate) fn secure(headers: &mut HeaderMap, admin: &AdminPolicy) {
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {}",
        admin.console_frame_ancestors
    );
    // The config refuses what would split the directive; a value that is
    // still no header value (non-ASCII) frames nothing rather than failing.
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ));
    headers.insert(CONTENT_SECURITY_POLICY, csp);
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.remove(PRAGMA);
}

/// Whether `If-None-Match` names `etag` (or is `*`). The comparison is weak
/// (RFC 9110 §13.1.2): a `W/` tag matches its strong twin.
fn unchanged(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use lambda_http::http::header::{ALLOW, SET_COOKIE};
    use proptest::prelude::*;

    use super::*;
    use crate::domain::App;
    use crate::domain::testing::Fixture;
    use crate::http::{Route, handle};

    const CSP_NONE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
        connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
        frame-ancestors 'none'";

    async fn request(
        app: &App,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Response<Body> {
        let mut request = lambda_http::http::Request::builder()
            .method(method)
            .uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        handle(
            app,
            "test",
            Route::ADMIN,
            request.body(Body::Empty).unwrap(),
        )
        .await
    }

    async fn get(app: &App, path: &str) -> Response<Body> {
        request(app, Method::GET, path, &[]).await
    }

    fn header<'a>(response: &'a Response<Body>, name: &str) -> &'a str {
        response
            .headers()
            .get(name)
            .map_or("", |v| v.to_str().unwrap())
    }

    fn text(response: &Response<Body>) -> &str {
        match response.body() {
            Body::Text(t) => t,
            Body::Empty => "",
            Body::Binary(b) => std::str::from_utf8(b).unwrap(),
            _ => panic!("an unknown body"),
        }
    }

    /// The headers every console response carries, whatever its status.
    fn assert_secured(response: &Response<Body>, frame_ancestors: &str, what: &str) {
        let csp = CSP_NONE.replace(
            "frame-ancestors 'none'",
            &format!("frame-ancestors {frame_ancestors}"),
        );
        assert_eq!(header(response, "content-security-policy"), csp, "{what}");
        assert_eq!(
            header(response, "x-content-type-options"),
            "nosniff",
            "{what}"
        );
        assert_eq!(header(response, "referrer-policy"), "no-referrer", "{what}");
        assert_eq!(header(response, "cache-control"), "no-cache", "{what}");
        assert!(response.headers().get(SET_COOKIE).is_none(), "{what}");
        assert!(response.headers().get(PRAGMA).is_none(), "{what}");
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_type_behind_any_prefix() {
        let app = Fixture::new().app;
        for (path, asset) in [
            ("/console/", "index.html"),
            ("/console/index.html", "index.html"),
            ("/console/portal", "index.html"),
            ("/Prod/console/", "index.html"),
            ("/Prod/console/portal", "index.html"),
            ("/console/app.js", "app.js"),
            ("/console/api.js", "api.js"),
            ("/console/dom.js", "dom.js"),
            ("/Prod/console/console.css", "console.css"),
        ] {
            let want = ASSETS.iter().find(|a| a.name == asset).unwrap();
            let response = get(&app, path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(
                header(&response, "content-type"),
                want.content_type,
                "{path}"
            );
            assert_eq!(text(&response), want.text, "{path}");
            assert_eq!(
                header(&response, "content-length"),
                want.text.len().to_string()
            );
            assert_secured(&response, "'none'", path);
        }
        let types: Vec<&str> = ASSETS.iter().map(|a| a.content_type).collect();
        assert_eq!(types, [HTML, JS, JS, JS, CSS]);
    }

    #[tokio::test]
    async fn the_page_loads_only_assets_that_are_served() {
        let app = Fixture::new().app;
        let page = text(&get(&app, "/console/").await).to_owned();
        for linked in ["console.css", "app.js"] {
            assert!(page.contains(&format!("\"{linked}\"")), "{linked}");
        }
        for asset in &ASSETS {
            // `import ... from "./name.js"`, in either quotes.
            let imports = asset.text.split(" from ").skip(1).filter_map(|rest| {
                let path = rest.strip_prefix(['"', '\''])?.strip_prefix("./")?;
                path.split(['"', '\'']).next()
            });
            for name in imports {
                let status = get(&app, &format!("/console/{name}")).await.status();
                assert_eq!(status, StatusCode::OK, "{} imports {name}", asset.name);
            }
        }
    }

    #[tokio::test]
    async fn a_head_is_a_get_without_the_body() {
        let app = Fixture::new().app;
        let got = get(&app, "/console/app.js").await;
        let head = request(&app, Method::HEAD, "/console/app.js", &[]).await;
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(text(&head), "");
        for name in [
            "content-type",
            "content-length",
            "etag",
            "content-security-policy",
        ] {
            assert_eq!(header(&head, name), header(&got, name), "{name}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_is_answered_304_with_the_security_headers() {
        let app = Fixture::new().app;
        let etag = header(&get(&app, "/console/").await, "etag").to_owned();
        assert_eq!(etag.len(), 66, "a quoted SHA-256: {etag}");
        for sent in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"x\", {etag}"),
            "*".into(),
        ] {
            let response =
                request(&app, Method::GET, "/console/", &[("if-none-match", &sent)]).await;
            assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{sent}");
            assert_eq!(text(&response), "", "{sent}");
            assert_eq!(header(&response, "etag"), etag);
            assert_secured(&response, "'none'", &sent);
        }
        let other = request(
            &app,
            Method::GET,
            "/console/",
            &[("if-none-match", "\"x\"")],
        )
        .await;
        assert_eq!(other.status(), StatusCode::OK);
        let css = request(
            &app,
            Method::GET,
            "/console/console.css",
            &[("if-none-match", &etag)],
        )
        .await;
        assert_eq!(css.status(), StatusCode::OK, "each file has its own tag");
    }

    #[tokio::test]
    async fn the_console_without_its_slash_redirects_to_it_behind_any_prefix() {
        let app = Fixture::new().app;
        for (path, resolved) in [
            ("/console", "/console/"),
            ("/Prod/console", "/Prod/console/"),
        ] {
            let response = get(&app, path).await;
            assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT, "{path}");
            let location = header(&response, "location");
            let base = url::Url::parse(&format!("https://api.example{path}")).unwrap();
            assert_eq!(base.join(location).unwrap().path(), resolved);
            assert_secured(&response, "'none'", path);
        }
        let head = request(&app, Method::HEAD, "/console", &[]).await;
        assert_eq!(head.status(), StatusCode::PERMANENT_REDIRECT);
    }

    #[tokio::test]
    async fn anything_else_under_the_console_is_a_404_with_the_security_headers() {
        let app = Fixture::new().app;
        for path in [
            "/console/nope.js",
            "/console/app.js/",
            "/console/a/app.js",
            "/console//",
            "/console/portal/x",
        ] {
            let response = get(&app, path).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(text(&response).contains("\"error\""), "{path}");
            assert_secured(&response, "'none'", path);
        }
    }

    #[tokio::test]
    async fn other_methods_are_405_with_allow_get_head() {
        let app = Fixture::new().app;
        for method in [
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            for path in ["/console", "/console/", "/console/app.js", "/console/nope"] {
                let response = request(&app, method.clone(), path, &[]).await;
                assert_eq!(
                    response.status(),
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path}"
                );
                assert_eq!(header(&response, ALLOW.as_str()), "GET, HEAD");
                assert_secured(&response, "'none'", path);
            }
        }
    }

    #[tokio::test]
    async fn frame_ancestors_come_from_the_config() {
        let admin = AdminPolicy::from_lookup(&|name| {
            (name == "CONSOLE_FRAME_ANCESTORS").then(|| "https://app.example 'self'".to_owned())
        })
        .unwrap();
        let app = Fixture::new().app.with_admin(admin);
        for path in ["/console/", "/console/nope", "/console"] {
            assert_secured(&get(&app, path).await, "https://app.example 'self'", path);
        }
    }

    #[tokio::test]
    async fn a_function_without_the_console_route_does_not_serve_it() {
        let app = Fixture::new().app;
        let request = lambda_http::http::Request::builder()
            .uri("/console/")
            .body(Body::Empty)
            .unwrap();
        let response = handle(&app, "test", Route::LOGIN, request).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().get("content-security-policy").is_none());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4_000))]

        #[test]
        fn any_path_is_no_page_or_one_that_its_segments_name(
            path in prop_oneof![
                any::<String>(),
                "(/[a-zé]{0,3})?/console(/(portal|app\\.js|index\\.html|console|é|x|)){0,3}/?",
            ],
        ) {
            let segments: Vec<&str> = path.split('/').collect();
            match Page::of(&path) {
                None => prop_assert!(!segments.contains(&"console")),
                Some(Page::Redirect) => prop_assert_eq!(segments.last(), Some(&"console")),
                Some(Page::Asset(i)) => {
                    let name = ASSETS[i].name;
                    let last = *segments.last().unwrap();
                    prop_assert!(last == name || (i == INDEX && (last.is_empty() || last == "portal")));
                }
                Some(Page::Missing) => prop_assert!(segments.contains(&"console")),
            }
        }
    }
}
