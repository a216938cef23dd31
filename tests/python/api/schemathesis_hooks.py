"""schemathesis hooks (loaded by its own process through SCHEMATHESIS_HOOKS).

Generated data rarely holds a real API key or token; these hooks put real
ones where the schema has a string, so the fuzzer reaches the success paths
too. Tokens that a revoke may end are kept apart from those others rely on.
On the management API, a root key's token replaces the bearer token, and real
key ids the generated ones in paths (now and then the generated id is kept:
an unknown key, or one schemathesis saw in an answer, but never a key these
credentials come from).
"""

import itertools
import os

import schemathesis

KEY, CLIENT_ID = os.environ["API_TESTS_KEY"], os.environ["API_TESTS_CLIENT_ID"]
TOKEN = os.environ["API_TESTS_TOKEN"]
INTROSPECTED = os.environ["API_TESTS_INTROSPECTED"]
SPARE = os.environ["API_TESTS_SPARE"]
ADMIN_TOKEN = os.environ["API_TESTS_ADMIN_TOKEN"]
# None keeps the generated key id.
LIVE_KEY_IDS = itertools.cycle([*os.environ["API_TESTS_LIVE_KEY_IDS"].split(), None])
REVOKED_KEY_ID = os.environ["API_TESTS_REVOKED_KEY_ID"]
# Keys whose scopes, secret and sessions the other credentials here rely on.
PROTECTED_KEY_IDS = {CLIENT_ID, os.environ["API_TESTS_ADMIN_KEY_ID"]}


@schemathesis.hook.apply_to(path="/auth/login")
def map_body(ctx, body):
    if isinstance(body, dict) and isinstance(body.get("api_key"), str):
        body["api_key"] = KEY
    return body


@schemathesis.hook
def before_call(ctx, case, kwargs):
    path, body = ctx.operation.path, case.body
    if path.startswith("/admin/v1/"):
        admin(path, case)
        return
    if path == "/auth/revoke" and case.headers and case.headers.get("Authorization", "").startswith("Bearer "):
        case.headers["Authorization"] = "Bearer " + SPARE
    if not isinstance(body, dict):
        return
    if path == "/auth/verify" and isinstance(body.get("token"), str):
        # The token in the body, and no bearer header beside it.
        body["token"] = TOKEN
        if case.headers:
            case.headers.pop("Authorization", None)
    if not path.startswith("/oauth2/"):
        return
    if isinstance(body.get("token"), str):
        body["token"] = INTROSPECTED if path == "/oauth2/introspect" else SPARE
    if isinstance(body.get("client_secret"), str):
        # client_secret_post: real credentials in the body, and no Basic beside them.
        body["client_id"], body["client_secret"] = CLIENT_ID, KEY
        if case.headers:
            case.headers.pop("Authorization", None)


def admin(path, case):
    """The root key's token, and a real key id: the one revokes go to, so the
    keys the other operations manage stay live."""
    if case.headers and case.headers.get("Authorization", "").startswith("Bearer "):
        case.headers["Authorization"] = "Bearer " + ADMIN_TOKEN
    params = case.path_parameters
    if params and "key_id" in params:
        if path == "/admin/v1/keys/{key_id}/revoke":
            params["key_id"] = REVOKED_KEY_ID
        elif (live := next(LIVE_KEY_IDS)) is not None or params["key_id"] in PROTECTED_KEY_IDS:
            params["key_id"] = live or REVOKED_KEY_ID
