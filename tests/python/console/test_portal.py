"""The customer portal in a real Chromium against `authctl serve`: one-time
links made through the management API as a provider's backend would, and
what the customer can and cannot do with them, in the page and through the
API directly with the portal token."""

import json
import subprocess
import time
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By

RETURN = "https://app.example/account/keys"
PORTAL_ENV = {"PORTAL_RETURN_ORIGINS": "https://app.example"}
COLUMNS = ["Name", "Key ID", "Scopes", "Status", "Created", "Last used", "Expires"]


@pytest.fixture
def portal_server(serve):
    return serve(**PORTAL_ENV)


def make_key(server, name, owner, scopes="read"):
    status, body, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                                 json={"name": name, "scopes": scopes, "owner": owner})
    assert status == 201, body
    return body


def code_of(url):
    return urlsplit(url).fragment.removeprefix("code=")


def open_portal(page, server, owner, scopes="read write", **extra):
    url = server.portal_link(owner, scopes, return_url=RETURN, **extra)
    page.open(url)
    page.role("heading", "API keys")
    return url


def names(page):
    return [row.find_elements(By.CSS_SELECTOR, "th, td")[0].text
            for row in page.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")]


def test_a_portal_link_shows_only_its_owners_keys_and_leaves_no_code_behind(page, portal_server):
    server = portal_server
    make_key(server, "acme-prod", "acme")
    make_key(server, "globex-prod", "globex")
    url = open_portal(page, server, "acme")
    assert "#code" not in page.url and code_of(url) not in page.url
    assert [n for n, _ in page.roles("columnheader")] == COLUMNS, "no owner column"
    assert names(page) == ["acme-prod"]
    assert not page.present("searchbox", "Owner")
    assert "Keys of acme" in page.text()
    page.shot("portal-keys")


def test_a_portal_creates_keys_with_its_allowed_scopes_only_and_up_to_the_cap(page, serve):
    server = serve(PORTAL_MAX_KEYS="2", **PORTAL_ENV)
    open_portal(page, server, "acme", scopes="read write")
    page.click("button", "Create key")
    page.role("dialog", "Create key")
    assert not page.present("textbox", "Owner") and not page.present("textbox", "Metadata")
    boxes = [n for n, _ in page.roles("checkbox")]
    assert boxes == ["read", "write"]
    page.fill("textbox", "Name", "from-portal")
    page.click("checkbox", "read")
    page.shot("portal-create")
    page.click("button", "Create")
    shown = page.role("textbox", "New API key").get_attribute("value")
    page.click("button", "I have stored it")
    page.until("the key listed", lambda: names(page) == ["from-portal"])

    status, body, _ = server.api("POST", "/auth/login", json={"api_key": shown})
    status, body, _ = server.api("GET", "/auth/verify", token=body["access_token"])
    assert (status, body["owner"], body["scope"]) == (200, "acme", "read")

    page.click("button", "Create key")
    page.fill("textbox", "Name", "second")
    page.click("checkbox", "write")
    page.click("button", "Create")
    page.click("button", "I have stored it")
    page.until("two keys", lambda: sorted(names(page)) == ["from-portal", "second"])

    page.click("button", "Create key")
    page.fill("textbox", "Name", "third")
    page.click("checkbox", "read")
    page.click("button", "Create")
    assert "at most 2 live keys" in page.alert()
    page.shot("portal-too-many")


def test_a_portal_token_gets_404_for_another_owners_key_and_403_beyond_its_routes(portal_server):
    server = portal_server
    mine = make_key(server, "mine", "acme")["key"]["key_id"]
    theirs = make_key(server, "theirs", "globex")["key"]["key_id"]
    url = server.portal_link("acme", "read", return_url=RETURN)
    status, grant, _ = server.api("POST", "/admin/v1/portal-sessions/exchange", json={"code": code_of(url)})
    assert status == 200, grant
    token = grant["access_token"]
    assert (grant["owner"], grant["allowed_scopes"], grant["return_url"], grant["expires_in"]) == ("acme", "read", RETURN, 1800)

    assert server.api("GET", f"/admin/v1/keys/{mine}", token=token)[0] == 200
    for method, path in [("GET", f"/admin/v1/keys/{theirs}"), ("POST", f"/admin/v1/keys/{theirs}/revoke"),
                         ("POST", f"/admin/v1/keys/{theirs}/rotate"), ("GET", f"/admin/v1/keys/{theirs}/sessions")]:
        assert server.api(method, path, token=token, json={} if method == "POST" else None)[0] == 404, path
    assert [k["key_id"] for k in server.api("GET", "/admin/v1/keys", token=token)[1]["keys"]] == [mine]
    status, listed, _ = server.api("GET", "/admin/v1/keys?owner=globex", token=token)
    assert (status, listed["keys"]) == (200, [])
    assert server.api("GET", f"/admin/v1/events?key_id={theirs}", token=token)[0] == 404
    status, events, _ = server.api("GET", "/admin/v1/events?owner=globex", token=token)
    assert (status, events["events"]) == (200, [])
    assert server.api("PATCH", f"/admin/v1/keys/{mine}", token=token, json={"name": "x"})[0] == 403
    assert server.api("POST", "/admin/v1/portal-sessions", token=token,
                      json={"owner": "acme", "allowed_scopes": "read"})[0] == 403
    status, body, _ = server.api("POST", "/admin/v1/keys", token=token, json={"name": "x", "scopes": "admin:keys:read"})
    assert (status, body["error"]) == (403, "insufficient_scope"), "no admin scope from a portal"
    status, body, _ = server.api("POST", "/admin/v1/keys", token=token, json={"name": "x", "scopes": "read write"})
    assert (status, body["error"]) == (400, "invalid_scope"), "only the link's allowed scopes"
    status, body, _ = server.api("POST", "/admin/v1/keys", token=token, json={"name": "x", "scopes": "read", "owner": "globex"})
    assert status == 403, body
    assert server.api("GET", "/auth/verify", token=token)[0] == 401, "a portal token is no API token"
    assert server.api("GET", f"/admin/v1/keys/{theirs}", token=server.root_token())[1]["status"] == "active"


def test_a_code_works_once_and_a_reload_offers_a_new_link(page, portal_server):
    server = portal_server
    url = open_portal(page, server, "acme")
    page.reload()
    page.role("heading", "This link has been used")
    back = page.role("link", "Get a new link")
    assert back.get_attribute("href") == RETURN
    page.shot("portal-link-used")
    page.open(url)
    page.role("heading", "This link has been used")
    status, body, _ = server.api("POST", "/admin/v1/portal-sessions/exchange", json={"code": code_of(url)})
    assert (status, body["error"]) == (400, "invalid_grant")


def test_a_code_is_refused_after_its_lifetime(page, serve):
    server = serve(PORTAL_LINK_SECONDS="1", **PORTAL_ENV)
    url = server.portal_link("acme", "read", return_url=RETURN)
    # Past its one second; waiting longer can only make it more expired.
    time.sleep(2.5)
    page.open(url)
    page.role("heading", "This link has been used")
    assert "expired" in page.text()
    status, body, _ = server.api("POST", "/admin/v1/portal-sessions/exchange", json={"code": code_of(url)})
    assert (status, body["error"]) == (400, "invalid_grant")


def test_the_portal_rotates_revokes_and_shows_its_activity_by_portal(page, portal_server):
    server = portal_server
    key = make_key(server, "ci", "acme")
    token = server.login(key["api_key"], session_id="deploy")
    open_portal(page, server, "acme")
    page.click("button", "ci")
    page.role("heading", "ci")
    assert "deploy" in page.role("table", "Sessions").text
    page.click("button", "Rotate")
    page.click("button", "Rotate key")
    page.click("button", "I have stored it")
    page.role("heading", "ci")
    page.click("button", "Revoke")
    page.click("button", "Revoke key")
    page.until("revoked", lambda: not page.present("button", "Revoke"))
    assert server.api("GET", "/auth/verify", token=token)[0] == 401
    page.until("the revoke in the activity", lambda: "key.revoked" in page.role("table", "Activity").text)
    activity = page.role("table", "Activity").text
    assert "key.revoked" in activity and "key.rotated" in activity and "portal (acme)" in activity
    page.shot("portal-activity")
    events = server.api("GET", f"/admin/v1/events?key_id={key['key']['key_id']}", token=server.root_token())[1]["events"]
    assert [e["actor"]["kind"] for e in events[:2]] == ["portal", "portal"]
    assert all(e["actor"]["owner"] == "acme" for e in events[:2])


def test_portal_sign_out_ends_the_portal_token(page, portal_server):
    server = portal_server
    key = make_key(server, "k", "acme")["key"]["key_id"]
    open_portal(page, server, "acme")
    token = page.bearer()
    assert server.api("GET", f"/admin/v1/keys/{key}", token=token)[0] == 200
    page.click("button", "Sign out")
    page.role("heading", "This link has been used")
    assert "signed out" in page.text()
    assert page.role("link", "Get a new link").get_attribute("href") == RETURN
    assert server.api("GET", f"/admin/v1/keys/{key}", token=token)[0] == 401


def test_the_portal_line_serve_prints_makes_a_link_that_opens_acmes_portal(page, server):
    """The quick start's way in: the curl line of the banner, run as printed."""
    [line] = [l.strip() for l in server.printed.splitlines() if "/admin/v1/portal-sessions" in l]
    done = subprocess.run(["bash", "-c", line], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    url = json.loads(done.stdout)["url"]
    assert url.startswith(f"{server.base}/console/portal#code=")
    make_key(server, "acme-prod", "acme")
    page.open(url)
    page.role("heading", "API keys")
    assert names(page) == ["acme-prod"]
