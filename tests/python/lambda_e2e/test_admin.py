"""The management API as a provider's backend calls it: a root key made by
authctl logs in through the login function and manages keys through the
admin function's URL; the same function serves the web console."""

import re
import uuid

import pytest


@pytest.fixture(scope="module")
def root_token(watch, table, make_key):
    """A bearer token of a root key holding admin:keys:read and admin:keys:write."""
    root = make_key("backend", "--table", table["TABLE_NAME"], scopes="admin:keys:read admin:keys:write")
    status, _, body = watch.post("login", "/auth/login", {"api_key": root["api_key"], "session_id": "backend"})
    assert status == 200, body
    return {"authorization": f"Bearer {body['access_token']}"}


def test_a_root_key_creates_a_key_for_a_customer_and_sees_it_listed(watch, root_token):
    owner = f"customer-{uuid.uuid4().hex[:12]}"
    new = {"name": "acme ci", "scopes": "read", "owner": owner, "meta": {"plan": "pro"}}
    status, headers, created = watch.call("admin", "POST", "/admin/v1/keys", headers=root_token, body=new)
    assert status == 201, created
    key_id = created["key"]["key_id"]
    assert created["api_key"].startswith("bauth_")
    assert headers.get("location") == f"/admin/v1/keys/{key_id}"

    status, _, listed = watch.call("admin", "GET", f"/admin/v1/keys?owner={owner}", headers=root_token)
    assert status == 200, listed
    assert [(k["key_id"], k["owner"], k["meta"]) for k in listed["keys"]] == [(key_id, owner, {"plan": "pro"})]
    assert "api_key" not in listed["keys"][0]

    status, _, body = watch.post("login", "/auth/login", {"api_key": created["api_key"]})
    assert status == 200, body


def test_the_admin_function_serves_the_console_and_the_script_it_loads(watch):
    status, headers, page = watch.fetch("admin", "GET", "/console/")
    assert status == 200, page
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert headers["content-security-policy"].startswith("default-src 'none'; script-src 'self';")
    assert headers["content-security-policy"].endswith("; frame-ancestors 'none'")
    assert "set-cookie" not in headers
    script = re.search(rb'<script type="module" src="([^"]+)"', page).group(1).decode()
    assert script == "app.js"

    status, headers, _ = watch.fetch("admin", "GET", f"/console/{script}")
    assert status == 200
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert "content-security-policy" in headers
