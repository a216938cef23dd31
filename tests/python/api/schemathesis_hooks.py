"""schemathesis hooks (loaded by its own process through SCHEMATHESIS_HOOKS).

Generated data rarely holds a real API key or token; these hooks put real
ones where the schema has a string, so the fuzzer reaches the success paths
too. Tokens that a revoke may end are kept apart from those others rely on.
"""

import os

import schemathesis

KEY, CLIENT_ID = os.environ["API_TESTS_KEY"], os.environ["API_TESTS_CLIENT_ID"]
TOKEN = os.environ["API_TESTS_TOKEN"]
INTROSPECTED = os.environ["API_TESTS_INTROSPECTED"]
SPARE = os.environ["API_TESTS_SPARE"]


@schemathesis.hook.apply_to(path="/auth/login")
def map_body(ctx, body):
    if isinstance(body, dict) and isinstance(body.get("api_key"), str):
        body["api_key"] = KEY
    return body


@schemathesis.hook
def before_call(ctx, case, kwargs):
    path, body = ctx.operation.path, case.body
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
