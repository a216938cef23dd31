"""The real functions' request lines carry CloudWatch EMF: valid against the
specification's schema (tests/integration/schemas/emf.json), in the
namespace METRICS_NAMESPACE names, counting what the request did, DynamoDB
calls included."""

import json
import time
import uuid
from pathlib import Path

import jsonschema

from conftest import METRICS_NAMESPACE

SCHEMA = json.loads((Path(__file__).parents[2] / "integration" / "schemas" / "emf.json").read_text())


def request_line(log, session_id, route, seconds=30):
    """The request line of `route` for `session_id` in the watch log, once written."""
    deadline = time.monotonic() + seconds
    while True:
        for raw in log.read_text(errors="replace").splitlines():
            start = raw.find("{")
            if start < 0 or session_id not in raw:
                continue
            try:
                line = json.loads(raw[start:])
            except ValueError:
                continue
            if line.get("message") == "request" and line.get("session_id") == session_id \
                    and line.get("route") == route:
                return line
        assert time.monotonic() < deadline, f"no {route} line for {session_id} in {log}"
        time.sleep(0.2)


def test_each_request_line_is_emf_in_the_configured_namespace(watch, key, target):
    # A login first, so that the key's last use is written (once an hour per
    # environment) before the counted one.
    status, _, _ = watch.call("login", "POST", "/auth/login", body={"api_key": key["api_key"]})
    assert status == 200
    session = f"emf-{uuid.uuid4().hex[:12]}"
    status, _, body = watch.call("login", "POST", "/auth/login",
                                 body={"api_key": key["api_key"], "session_id": session})
    assert status == 200, body
    status, _, _ = watch.call("verify", "GET", "/auth/verify",
                              headers={"authorization": f"Bearer {body['access_token']}"})
    assert status == 200

    log = target / "lambda-e2e.log"
    login = request_line(log, session, "/auth/login")
    verify = request_line(log, session, "/auth/verify")
    for line, function in ((login, "login"), (verify, "verify")):
        jsonschema.validate(line, SCHEMA)
        [directive] = line["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == METRICS_NAMESPACE, line
        assert directive["Dimensions"] == [["Function"], ["Function", "Route"]], line
        assert (line["Function"], line["Route"]) == (function, line["route"]), line
        assert line["Requests"] == 1 and line["ServerErrors"] == 0 and line["ClientErrors"] == 0, line
        assert line["Latency"] == line["latency_ms"], line
        for metric in directive["Metrics"]:
            assert isinstance(line[metric["Name"]], (int, float)), (metric, line)
    # The call budgets: opening a session reads the key and session, the
    # key's session times, and writes the session; a verify is one read.
    assert (login["TokensMinted"], login["DynamoDbCalls"]) == (1, 3), login
    assert verify["DynamoDbCalls"] == 1, verify
