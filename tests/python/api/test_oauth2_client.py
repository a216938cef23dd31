"""The client-credentials life of a token through an OAuth2 client library
nobody here wrote (authlib): it discovers the endpoints from the RFC 8414
metadata, fetches a token (client_secret_basic, then client_secret_post),
uses it on /auth/verify, introspects it, revokes it, and sees verify refuse
it. Each test fetches a token on a session of its own."""

import uuid

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata


@pytest.fixture(scope="session")
def metadata(server):
    r = requests.get(f"{server.base}/.well-known/oauth-authorization-server", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="session")
def oauth2_key(server, make_key):
    return make_key("oauth2-client", "--data-dir", server.data_dir)


@pytest.fixture(params=["client_secret_basic", "client_secret_post"])
def client(request, oauth2_key):
    """An authlib session authenticating as the key by that method."""
    with OAuth2Session(oauth2_key["key_id"], oauth2_key["api_key"], scope="read",
                       token_endpoint_auth_method=request.param,
                       revocation_endpoint_auth_method=request.param) as client:
        yield client


@pytest.fixture
def session_id():
    return f"authlib-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def token(client, metadata, session_id):
    """fetch_token by client credentials; the client then sends it as Bearer."""
    return client.fetch_token(metadata["token_endpoint"], grant_type="client_credentials", session_id=session_id)


def revoke(client, metadata, token):
    return client.revoke_token(metadata["revocation_endpoint"], token=token["access_token"],
                               token_type_hint="access_token", timeout=10)


def test_authlib_accepts_the_rfc_8414_metadata(server, metadata):
    validated = AuthorizationServerMetadata(metadata)
    # Each validator of what we serve; response_types_supported is empty on
    # purpose (no authorization endpoint), which authlib's whole-document
    # validate() would call missing.
    for part in ("issuer", "token_endpoint", "grant_types_supported",
                 "token_endpoint_auth_methods_supported", "revocation_endpoint",
                 "revocation_endpoint_auth_methods_supported", "introspection_endpoint",
                 "introspection_endpoint_auth_methods_supported"):
        getattr(validated, f"validate_{part}")()
    assert metadata["issuer"] == server.base


def test_fetch_token_gives_a_bearer_token_for_scope_read(token):
    assert token["token_type"] == "Bearer", token
    assert token["scope"] == "read"
    assert 0 < token["expires_in"] <= 7200
    assert token["access_token"].count(".") == 2


def test_the_token_verifies_as_active_for_our_client_and_session(server, client, token, oauth2_key, session_id):
    r = client.get(f"{server.base}/auth/verify", params={"scope": "read"}, timeout=10)
    body = r.json()
    assert r.status_code == 200, body
    assert body["active"] is True
    assert body["sub"] == oauth2_key["key_id"]
    assert body["session_id"] == session_id


def test_introspect_token_says_active_with_client_id_and_scope(client, metadata, token, oauth2_key):
    r = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"], timeout=10)
    body = r.json()
    assert r.status_code == 200, body
    assert body["active"] is True
    assert body["client_id"] == oauth2_key["key_id"]
    assert body["scope"] == "read"
    assert body["token_type"] == "Bearer"


def test_revoke_token_answers_200_with_one_session_revoked(client, metadata, token):
    r = revoke(client, metadata, token)
    assert r.status_code == 200, r.text
    assert r.json()["sessions_revoked"] == 1


def test_the_revoked_token_no_longer_verifies_401_invalid_token(server, client, metadata, token):
    assert revoke(client, metadata, token).status_code == 200
    r = client.get(f"{server.base}/auth/verify", timeout=10)
    body = r.json()
    assert r.status_code == 401, body
    assert body["active"] is False
    assert body["error"] == "invalid_token"
    assert r.headers.get("WWW-Authenticate", "").startswith("Bearer")


def test_introspect_token_of_the_revoked_token_says_exactly_inactive(client, metadata, token):
    assert revoke(client, metadata, token).status_code == 200
    r = client.introspect_token(metadata["introspection_endpoint"], token=token["access_token"], timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == {"active": False}
