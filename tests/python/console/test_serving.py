"""The console as served: its security headers, its cache validator, and a
page that loads nothing from another origin."""

import httpx

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
       "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {}")


def test_the_console_is_served_with_every_security_header_and_no_cookie(server):
    response = httpx.get(server.console)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-security-policy"] == CSP.format("'none'")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-cache"
    assert "set-cookie" not in response.headers
    assert '<script type="module" src="app.js">' in response.text


def test_a_matching_etag_is_answered_304_with_the_same_headers(server):
    etag = httpx.get(server.console).headers["etag"]
    assert etag.startswith('"') and etag.endswith('"'), etag

    unchanged = httpx.get(server.console, headers={"if-none-match": etag})
    assert (unchanged.status_code, unchanged.content) == (304, b"")
    assert unchanged.headers["etag"] == etag
    assert unchanged.headers["content-security-policy"] == CSP.format("'none'")
    assert httpx.get(server.console, headers={"if-none-match": '"other"'}).status_code == 200


def test_the_page_loads_nothing_from_another_origin(server, page):
    page.open(server.console)
    requested = page.requests()
    assert f"{server.console}app.js" in requested, requested
    assert f"{server.console}console.css" in requested, requested
    assert [url for url in requested if not url.startswith(f"{server.base}/")] == []
    assert server.count("/console") == len([url for url in requested if url.startswith(server.console)])
    page.shot("served")


def test_console_frame_ancestors_sets_who_may_frame_the_console(serve):
    server = serve(CONSOLE_FRAME_ANCESTORS="https://app.example 'self'")
    response = httpx.get(server.console)
    assert response.headers["content-security-policy"] == CSP.format("https://app.example 'self'")
