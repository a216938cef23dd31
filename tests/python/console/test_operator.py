"""Operator mode in a real Chromium against `authctl serve`: signing in with
the starter root key, and every screen and action of the console on it,
found by role and accessible name as a screen reader would."""

import datetime as dt
import re
import time

from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

API_KEY = re.compile(r"bauth_[0-9a-f]{16}_[0-9a-f]{64}_[0-9a-f]{8}")
COLUMNS = ["Name", "Key ID", "Owner", "Scopes", "Status", "Created", "Last used", "Expires"]


def sign_in(page, server):
    page.open(server.console)
    page.fill("textbox", "API key", server.root_key)
    page.click("button", "Sign in")
    page.role("heading", "API keys")


def create_key(page, name, scopes="read write", owner=None, meta=None):
    """Creates a key through the dialog; returns the key shown once, after closing it."""
    page.click("button", "Create key")
    page.role("dialog", "Create key")
    page.fill("textbox", "Name", name)
    page.fill("textbox", "Scopes", scopes)
    if owner:
        page.fill("textbox", "Owner", owner)
    if meta:
        page.fill("textbox", "Metadata", meta)
    page.click("button", "Create")
    page.role("dialog", "Copy your new key")
    shown = page.role("textbox", "New API key").get_attribute("value")
    assert API_KEY.fullmatch(shown), shown
    return shown


def column(page, name):
    """The texts of one column of the keys table, by its header."""
    headers = [h.text for h in page.driver.find_elements(By.CSS_SELECTOR, "main table thead th")]
    index = headers.index(name)
    return [row.find_elements(By.CSS_SELECTOR, "th, td")[index].text
            for row in page.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")]


def test_the_starter_root_key_signs_in_and_lists_keys_with_every_column(page, server):
    page.open(server.console)
    page.role("heading", "Sign in")
    page.shot("sign-in")
    sign_in(page, server)
    assert [name for name, _ in page.roles("columnheader")] == COLUMNS
    assert {"starter", "console"} <= set(column(page, "Name"))
    page.role("searchbox", "Owner")
    page.role("button", "Sign out")
    page.shot("keys")


def test_a_key_created_in_the_page_works_and_is_shown_once(page, server):
    sign_in(page, server)
    shown = create_key(page, "billing", scopes="read", owner="acme", meta='{"plan": "pro"}')
    page.role("button", "Copy")
    assert "will not be shown again" in page.role("dialog", "Copy your new key").text
    page.shot("key-shown-once")

    status, body, _ = server.api("POST", "/auth/login", json={"api_key": shown})
    assert status == 200, body
    status, body, _ = server.api("GET", "/auth/verify", token=body["access_token"])
    assert (status, body["owner"], body["meta"], body["scope"]) == (200, "acme", {"plan": "pro"}, "read")

    page.click("button", "I have stored it")
    page.absent("dialog", "Copy your new key")
    assert shown not in page.driver.page_source
    assert "billing" in column(page, "Name")
    page.reload()
    page.role("heading", "Sign in")
    assert shown not in page.driver.page_source


def test_escape_closes_the_shown_key_and_removes_it(page, server):
    sign_in(page, server)
    shown = create_key(page, "escaped")
    page.role("textbox", "New API key").send_keys(Keys.ESCAPE)
    page.absent("dialog", "Copy your new key")
    assert shown not in page.driver.page_source


def test_the_owner_search_shows_only_that_owners_keys(page, server):
    for name, owner, scopes in [("acme production", "acme", "read write"), ("acme ci", "acme", "read"),
                                ("globex billing", "globex", "billing:read")]:
        status, body, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                                     json={"name": name, "scopes": scopes, "owner": owner, "expires_in": 7776000})
        assert status == 201, body
    sign_in(page, server)
    page.until("every key listed", lambda: len(column(page, "Name")) == 5)
    page.shot("keys-of-owners")
    page.fill("searchbox", "Owner", "acme")
    page.click("button", "Search")
    page.until("only acme's keys listed", lambda: sorted(column(page, "Name")) == ["acme ci", "acme production"])
    assert set(column(page, "Owner")) == {"acme"}
    page.fill("searchbox", "Owner", "nobody")
    page.role("searchbox", "Owner").send_keys(Keys.ENTER)
    page.until("no keys listed", lambda: "No keys of nobody." in page.text())


def test_detail_sessions_revoke_and_activity(page, server):
    status, body, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                                 json={"name": "worker", "scopes": "read"})
    key_id, api_key = body["key"]["key_id"], body["api_key"]
    first = server.login(api_key, session_id="alpha")
    second = server.login(api_key, session_id="beta")

    sign_in(page, server)
    page.click("button", "worker")
    page.role("heading", "worker")
    page.role("heading", "Sessions")
    page.role("heading", "Activity")
    sessions = page.role("table", "Sessions")
    assert "alpha" in sessions.text and "beta" in sessions.text
    page.shot("key-detail")

    alpha = sessions.find_element(By.XPATH, ".//tr[.//code[text()='alpha']]")
    [button] = [b for b in alpha.find_elements(By.TAG_NAME, "button") if b.accessible_name == "Revoke session"]
    button.click()
    page.until("alpha gone", lambda: "alpha" not in page.role("table", "Sessions").text)
    assert server.api("GET", "/auth/verify", token=first)[0] == 401
    assert server.api("GET", "/auth/verify", token=second)[0] == 200

    page.click("button", "Revoke all sessions")
    page.until("no sessions listed", lambda: "No live sessions." in page.text())
    assert server.api("GET", "/auth/verify", token=second)[0] == 401

    # Both sections reload after each revoke; the activity may come in last.
    page.until("the revokes in the activity", lambda: "sessions.revoked" in page.role("table", "Activity").text)
    rows = [r.text for r in page.role("table", "Activity").find_elements(By.CSS_SELECTOR, "tbody tr")]
    actions = [next(a for a in ("sessions.revoked", "session.revoked", "key.created") if a in r) for r in rows]
    # Newest first, each by the console's root key.
    assert actions[:3] == ["sessions.revoked", "session.revoked", "key.created"], rows
    assert all(f"key {server.root_key_id}" in r for r in rows[:2]), rows
    page.shot("activity")


def test_rotate_shows_when_the_old_secret_stops_and_the_new_key_once(page, server):
    status, body, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                                 json={"name": "rotating", "scopes": "read"})
    old = body["api_key"]
    sign_in(page, server)
    page.click("button", "rotating")
    page.click("button", "Rotate")
    rotate = page.role("dialog", "Rotate rotating")
    tomorrow = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).strftime("%Y-%m-%d")
    stops = re.search(r"The old secret stops working on (\d{4}-\d\d-\d\d) \d\d:\d\d UTC\.", rotate.text)
    # Within a minute of midnight the page and the test may see different days.
    assert stops and stops.group(1) in {tomorrow, (dt.date.fromisoformat(tomorrow) - dt.timedelta(days=1)).isoformat(),
                                        (dt.date.fromisoformat(tomorrow) + dt.timedelta(days=1)).isoformat()}, rotate.text
    page.shot("rotate")
    page.click("button", "Rotate key")
    copy = page.role("dialog", "Copy your new key")
    assert "The old secret works until" in copy.text
    new = page.role("textbox", "New API key").get_attribute("value")
    assert new != old and new[:22] == old[:22], "same key id, new secret"
    page.click("button", "I have stored it")
    page.role("heading", "rotating")
    assert server.api("POST", "/auth/login", json={"api_key": new})[0] == 200
    assert server.api("POST", "/auth/login", json={"api_key": old})[0] == 200, "the grace period"

    # At once: the previous secret stops now.
    page.click("button", "Rotate")
    page.role("dialog", "Rotate rotating")
    grace = page.role("combobox", "Grace period")
    grace.find_element(By.XPATH, ".//option[text()='At once']").click()
    page.until("the page says at once", lambda: "stops working at once" in page.role("dialog", "Rotate rotating").text)
    page.click("button", "Rotate key")
    newest = page.role("textbox", "New API key").get_attribute("value")
    page.click("button", "I have stored it")
    assert server.api("POST", "/auth/login", json={"api_key": new})[0] == 401
    assert server.api("POST", "/auth/login", json={"api_key": newest})[0] == 200


def test_revoking_in_the_page_asks_first_and_stops_the_keys_tokens(page, server):
    status, body, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                                 json={"name": "doomed", "scopes": "read"})
    token = server.login(body["api_key"])
    sign_in(page, server)
    page.click("button", "doomed")
    page.click("button", "Revoke")
    confirm = page.role("dialog", "Revoke doomed?")
    assert "doomed" in confirm.text and body["key"]["key_id"] in confirm.text
    page.shot("revoke")
    page.click("button", "Cancel")
    page.absent("dialog", "Revoke doomed?")
    assert server.api("GET", "/auth/verify", token=token)[0] == 200

    page.click("button", "Revoke")
    page.click("button", "Revoke key")
    page.until("the key shows revoked", lambda: "revoked" in page.text() and not page.present("button", "Revoke"))
    assert server.api("GET", "/auth/verify", token=token)[0] == 401
    assert server.api("GET", f"/admin/v1/keys/{body['key']['key_id']}", token=server.root_token())[1]["status"] == "revoked"


def test_an_xss_named_key_is_shown_as_text_and_runs_nothing(page, server):
    name = "<img src=x onerror=alert(1)><script>alert(2)</script>"
    status, _, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                              json={"name": name, "scopes": "read", "owner": "acme", "meta": {"x": "<i>y</i>"}})
    assert status == 201
    sign_in(page, server)
    assert name in column(page, "Name")
    page.click("button", name)
    page.role("heading", name)
    assert not page.driver.find_elements(By.CSS_SELECTOR, "main img, main script, main b, main i")
    try:
        page.driver.switch_to.alert
        raise AssertionError("a script ran: an alert is open")
    except NoAlertPresentException:
        pass
    assert page.driver.execute_script("return document.querySelectorAll('img').length") == 0


def test_a_refused_key_and_a_revoked_sign_in_are_shown_as_alerts(page, server):
    page.open(server.console)
    page.fill("textbox", "API key", "bauth_" + "0" * 16 + "_" + "0" * 64 + "_00000000")
    page.click("button", "Sign in")
    assert "not accepted" in page.alert()
    assert "0" * 64 not in page.driver.page_source, "the key left the page"
    page.shot("sign-in-refused")

    sign_in(page, server)
    # The root key's sessions revoked from elsewhere: the next action asks to sign in again.
    assert server.api("POST", f"/admin/v1/keys/{server.root_key_id}/sessions/revoke", token=server.root_token())[0] == 200
    page.click("button", "starter")
    page.role("heading", "Sign in")
    assert "sign in again" in page.alert()


def test_sign_out_revokes_the_consoles_session(page, server):
    sign_in(page, server)
    sessions = server.api("GET", f"/admin/v1/keys/{server.root_key_id}/sessions", token=server.root_token())[1]["sessions"]
    [console] = [s for s in sessions if s["session_id"].startswith("console-")]
    assert re.fullmatch(r"console-[0-9a-f]{32}", console["session_id"])
    page.click("button", "Sign out")
    page.role("heading", "Sign in")
    assert "signed out" in page.alert()
    sessions = server.api("GET", f"/admin/v1/keys/{server.root_key_id}/sessions", token=server.root_token())[1]["sessions"]
    assert console["session_id"] not in [s["session_id"] for s in sessions]


def focused(page):
    """The focused element, read again if the page replaced it as we looked."""
    for _ in range(50):
        element = page.driver.switch_to.active_element
        try:
            element.accessible_name
            return element
        except StaleElementReferenceException:
            time.sleep(0.1)
    raise AssertionError("the focused element keeps being replaced")


def test_keyboard_only_sign_in_create_and_close(page, server):
    page.open(server.console)
    field = page.role("textbox", "API key")
    assert focused(page) == field, "the key field has the focus"
    field.send_keys(server.root_key, Keys.ENTER)
    page.role("heading", "API keys")
    active = focused(page)
    for _ in range(10):
        if active.accessible_name == "Create key":
            break
        ActionChains(page.driver).send_keys(Keys.TAB).perform()
        active = focused(page)
    assert active.accessible_name == "Create key"
    active.send_keys(Keys.ENTER)
    page.role("dialog", "Create key")
    name = focused(page)
    assert name.accessible_name == "Name"
    name.send_keys("typed")
    name.send_keys(Keys.TAB, "read", Keys.ENTER)
    page.role("dialog", "Copy your new key")
    ActionChains(page.driver).send_keys(Keys.ESCAPE).perform()
    page.absent("dialog", "Copy your new key")
    page.until("the new key listed", lambda: "typed" in column(page, "Name"))


def test_the_layout_holds_at_360_px(page, server):
    page.driver.set_window_size(360, 800)
    try:
        sign_in(page, server)
        page.role("button", "console")
        width = page.driver.execute_script("return window.innerWidth")
        page.until("no sideways scrolling of the page",
                   lambda: page.driver.execute_script("return document.documentElement.scrollWidth") <= width)
        page.shot("keys-360px")
        page.click("button", "console")
        page.role("heading", "console")
        assert page.driver.execute_script("return document.documentElement.scrollWidth") <= width
        page.shot("detail-360px")
    finally:
        page.driver.set_window_size(1280, 900)


def test_the_page_loads_nothing_from_another_origin(page, server):
    sign_in(page, server)
    page.click("button", "console")
    page.role("heading", "Activity")
    requested = page.requests()
    assert requested, "the network log is empty"
    assert all(url.startswith(server.base + "/") for url in requested), requested


def test_an_operator_edits_a_keys_name_scopes_and_metadata(page, server):
    status, body, _ = server.api("POST", "/admin/v1/keys", token=server.root_token(),
                                 json={"name": "draft", "scopes": "read write", "meta": {"plan": "free"}})
    key_id = body["key"]["key_id"]
    sign_in(page, server)
    page.click("button", "draft")
    page.click("button", "Edit")
    page.role("dialog", "Edit draft")
    page.fill("textbox", "Name", "final")
    page.fill("textbox", "Scopes", "read")
    page.fill("textbox", "Metadata", '{"plan": "pro"}')
    page.click("button", "Save")
    page.role("heading", "final")
    status, key, _ = server.api("GET", f"/admin/v1/keys/{key_id}", token=server.root_token())
    assert (key["name"], key["scopes"], key["meta"]) == ("final", "read", {"plan": "pro"})
    page.until("the update in the activity", lambda: "key.updated" in page.role("table", "Activity").text)

    page.click("button", "Edit")
    page.fill("textbox", "Scopes", "read admin:keys:write")
    page.click("button", "Save")
    # The starter root key holds admin:keys:write, so this one is allowed; a bad scope is not.
    page.role("heading", "final")
    page.click("button", "Edit")
    page.fill("textbox", "Scopes", "not a valid scope\u00e9")
    page.click("button", "Save")
    assert page.alert()
    assert server.api("GET", f"/admin/v1/keys/{key_id}", token=server.root_token())[1]["scopes"] == "admin:keys:write read"


def test_when_the_token_expires_the_page_asks_to_sign_in_again(page, serve):
    """The shortest token the service issues lives 60 s; the page watches it."""
    server = serve(TOKEN_TTL_SECONDS="60", REFRESH_WINDOW_SECONDS="0")
    sign_in(page, server)
    page.role("heading", "Sign in", timeout=120)
    assert "expired" in page.alert()
    assert not page.present("button", "Sign out")
