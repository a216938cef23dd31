"""schemathesis fuzzes every operation of openapi.yaml against the server,
with real credentials (schemathesis_hooks.py, schemathesis.toml; a root
key's token and real key ids on the management API): no 5xx,
and every status, content type, header and body as documented. Its output
is target/api-tests/schemathesis.log, its reports target/api-tests/schemathesis/."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import requests

HERE = Path(__file__).resolve().parent
# Small per operation, and a hard stop well inside CI's budget.
MAX_EXAMPLES = 25
TIMEOUT_SECONDS = 300
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
])


def test_schemathesis_finds_no_5xx_and_every_answer_as_documented(server, admin_keys, root, out, venv_bin,
                                                                   summary, tmp_path):
    key = server.starter_key
    env = dict(
        os.environ,
        PYTHONPATH=str(HERE),
        PYTHONDONTWRITEBYTECODE="1",
        SCHEMATHESIS_HOOKS="schemathesis_hooks",
        API_TESTS_KEY=key,
        API_TESTS_CLIENT_ID=server.starter_client_id,
        API_TESTS_TOKEN=login(server.base, key, "schemathesis"),
        API_TESTS_INTROSPECTED=login(server.base, key, "schemathesis-introspected"),
        API_TESTS_SPARE=login(server.base, key, "schemathesis-spare"),
        API_TESTS_ADMIN_TOKEN=login(server.base, admin_keys.root, "schemathesis"),
        API_TESTS_ADMIN_KEY_ID=admin_keys.root_id,
        API_TESTS_LIVE_KEY_IDS=" ".join(admin_keys.live),
        API_TESTS_REVOKED_KEY_ID=admin_keys.revoked,
    )
    report = out / "schemathesis"
    command = [
        venv_bin / "schemathesis", "--config-file", HERE / "schemathesis.toml",
        "run", root / "openapi.yaml", "--url", server.base,
        "--checks", CHECKS, "--max-examples", MAX_EXAMPLES,
        # One worker: CPython 3.11's ast module is not thread-safe, and two
        # workers compiling hypothesis strategies at once fail at random with
        # "AST constructor recursion depth mismatch".
        "--workers", "1",
        "--generation-database", "none", "--no-color",
        "--report", "junit,ndjson", "--report-dir", report,
    ]
    log = out / "schemathesis.log"
    started = time.monotonic()
    try:
        done = subprocess.run([str(c) for c in command], env=env, cwd=tmp_path, timeout=TIMEOUT_SECONDS,
                              capture_output=True, text=True)
    except subprocess.TimeoutExpired as e:
        log.write_text(e.output.decode(errors="replace") if e.output else "")
        pytest.fail(f"schemathesis took over {TIMEOUT_SECONDS} s; log in {log}", pytrace=False)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    log.write_text(output)
    figures = ndjson_figures(report)
    line = (f"schemathesis {figures.get('version', '?')}: {figures.get('operations', '?')} operations, "
            f"{figures.get('cases', '?')} test cases, {figures.get('failures', '?')} failures, "
            f"{elapsed:.1f} s (seed {figures.get('seed', '?')})")
    summary.append(line)
    assert done.returncode == 0 and figures.get("failures") == 0, \
        f"{line}, exit {done.returncode}, log in {log}:\n{output[-6000:]}"


def login(base, api_key, session_id):
    r = requests.post(f"{base}/auth/login", json={"api_key": api_key, "session_id": session_id}, timeout=10)
    r.raise_for_status()
    return r.json()["access_token"]


def ndjson_figures(report):
    """Operations, cases and failing cases from schemathesis' event stream."""
    figures, cases, failing = {}, set(), set()
    for path in report.glob("*.ndjson"):
        for line in path.read_text().splitlines():
            kind, body = next(iter(json.loads(line).items()))
            if kind == "Initialize":
                figures["version"], figures["seed"] = body.get("schemathesis_version"), body.get("seed")
            elif kind == "LoadingFinished":
                figures["operations"] = body["statistic"]["operations"]["selected"]
            elif kind == "ScenarioFinished":
                recorder = body.get("recorder", {})
                cases.update(recorder.get("cases", {}))
                for case, checks in recorder.get("checks", {}).items():
                    if any(c.get("status") == "failure" for c in checks):
                        failing.add(case)
    if "operations" in figures:
        figures["cases"], figures["failures"] = len(cases), len(failing)
    return figures
