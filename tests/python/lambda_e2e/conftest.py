"""The real Lambda binaries (login, verify, revoke, authorizer, admin) under
`cargo lambda watch`, started once per session, against the DynamoDB and
Secrets Manager of AWS_ENDPOINT_URL (moto, started by scripts/test), with a
table, signing secret and API key made by authctl. The watch log is
target/lambda-e2e.log.
"""

import json
import os
import subprocess
import urllib.error
import urllib.request
import uuid

import pytest

FUNCTIONS = ("login", "verify", "revoke", "authorizer", "admin")
ISSUER = "https://auth.e2e.test"
METRICS_NAMESPACE = "BearerAuthE2E"
# A function's first invocation under watch may wait for `cargo run` to
# finish a build (and for other cargo processes holding the build lock).
FIRST_CALL_SECONDS = 600
CALL_SECONDS = 30


@pytest.fixture(scope="session")
def binaries(run):
    """The functions and authctl, built (a no-op after scripts/test's build)."""
    if not os.environ.get("AWS_ENDPOINT_URL"):
        pytest.fail("AWS_ENDPOINT_URL is not set; run scripts/test, which starts moto", pytrace=False)
    run(["cargo", "build", "--locked", "--quiet",
         *[arg for name in (*FUNCTIONS, "authctl") for arg in ("--bin", name)]], timeout=1800)


@pytest.fixture(scope="session")
def table(binaries, authctl, run):
    """`authctl setup` on a fresh table: its TABLE_NAME and SIGNING_SECRET_ARN."""
    out = run([authctl, "setup", "--table", f"e2e-{uuid.uuid4().hex[:12]}"])
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.fixture(scope="session")
def key(table, make_key):
    """An API key with scopes read and write in that table: api_key, key_id."""
    return make_key("lambda-e2e", "--table", table["TABLE_NAME"])


@pytest.fixture(scope="session")
def watch(table, spawn, free_port, wait_for_url, run, root, target, venv_bin, tmp_path_factory):
    """`cargo lambda watch` on a free port, the functions configured for that table."""
    env = dict(
        os.environ,
        PATH=f"{venv_bin}{os.pathsep}{os.environ['PATH']}",
        TABLE_NAME=table["TABLE_NAME"],
        SIGNING_SECRET_ARN=table["SIGNING_SECRET_ARN"],
        ISSUER=ISSUER,
        TOKEN_TTL_SECONDS="7200",
        REFRESH_WINDOW_SECONDS="300",
        AUTHORIZER_ROUTE_SCOPES="GET /v1/whoami=read;POST /v1/documents=write documents:write",
        # Not the default, so a test can tell the setting reached the functions.
        METRICS_NAMESPACE=METRICS_NAMESPACE,
    )
    port = free_port()
    log = target / "lambda-e2e.log"
    # --ignore-changes: files edited during a run must not restart a function mid-test.
    with spawn(["cargo", "lambda", "watch", "--ignore-changes",
                "--invoke-address", "127.0.0.1", "--invoke-port", port], log, env=env) as process:
        watch = Watch(port, env, root / "events", tmp_path_factory.mktemp("events"))
        # Any HTTP answer will do: the default route is disabled in a workspace.
        wait_for_url(watch.base, process, 60, log)
        yield watch


@pytest.fixture(scope="session")
def fixture_token(watch, key):
    """A token from `cargo lambda invoke login` on events/login.json with the real key."""
    response = watch.invoke("login", "login.json", {"__API_KEY__": key["api_key"]})
    assert response["statusCode"] == 200, response
    return json.loads(response["body"])["access_token"]


EMULATOR_ATTEMPTS = 3
"""Requests a call makes when cargo lambda itself answers 500."""


def ours(raw):
    """Whether a body is one of the service's JSON errors (`error` and `request_id`)."""
    try:
        body = json.loads(raw)
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body and "request_id" in body


class Watch:
    """Calls to the functions under watch: through their function URLs, and
    with `cargo lambda invoke` on the events/ fixtures."""

    def __init__(self, port, env, events, scratch):
        self.port, self.env, self.events, self.scratch = port, env, events, scratch
        self.base = f"http://127.0.0.1:{port}"
        self.warm = set()

    def call(self, function, method, path, headers=None, body=None):
        """One request to a function URL: (status, lowercased headers, JSON body)."""
        data = None if body is None else json.dumps(body).encode()
        headers = {**({"content-type": "application/json"} if data else {}), **(headers or {})}
        status, got, raw = self.fetch(function, method, path, headers, data)
        return status, got, json.loads(raw)

    def fetch(self, function, method, path, headers=None, data=None):
        """One request to a function URL: (status, lowercased headers, body bytes)."""
        request = urllib.request.Request(
            f"{self.base}/lambda-url/{function}{path}", data=data, method=method, headers=headers or {},
        )
        timeout = CALL_SECONDS if function in self.warm else FIRST_CALL_SECONDS
        for attempt in range(EMULATOR_ATTEMPTS):
            try:
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    status, raw, got = response.status, response.read(), response.headers
            except urllib.error.HTTPError as e:
                status, raw, got = e.code, e.read(), e.headers
            # cargo lambda's own 500 (its body is never our error body) has
            # been seen once for a GET the function logged as 200: the
            # emulator's fault, not the function's, so a GET is asked again;
            # our own 500s, other answers and other methods return at once.
            if method not in ("GET", "HEAD") or status != 500 or ours(raw):
                break
            print(f"cargo lambda answered 500 itself (attempt {attempt + 1}): {raw[:300]!r}")
        self.warm.add(function)
        return status, {k.lower(): v for k, v in got.items()}, raw

    def post(self, function, path, body):
        return self.call(function, "POST", path, body=body)

    def invoke(self, function, fixture, values=None):
        """The Lambda response to events/<fixture>, placeholders filled in."""
        done = self._invoke(function, fixture, values)
        assert done.returncode == 0, f"cargo lambda invoke failed ({done.returncode}):\n{done.stderr}{done.stdout}"
        return json.loads(done.stdout)

    def invoke_error(self, function, fixture, values=None):
        """What `cargo lambda invoke` prints when the function answers with an error."""
        done = self._invoke(function, fixture, values)
        assert done.returncode != 0, f"the function answered instead of failing: {done.stdout}"
        return done.stdout + done.stderr

    def arn_of(self, fixture):
        """The methodArn an events/ fixture is for."""
        return json.loads((self.events / fixture).read_text())["methodArn"]

    def _invoke(self, function, fixture, values):
        # Text replacement, so a base64 body stays as written.
        text = (self.events / fixture).read_text()
        for placeholder, value in (values or {}).items():
            text = text.replace(placeholder, value)
        data = self.scratch / f"{uuid.uuid4().hex}.json"
        data.write_text(text)
        done = subprocess.run(
            ["cargo", "lambda", "invoke", function, "--data-file", str(data),
             "--invoke-address", "127.0.0.1", "--invoke-port", str(self.port), "--output-format", "json"],
            env=self.env, capture_output=True, text=True, timeout=FIRST_CALL_SECONDS,
        )
        self.warm.add(function)
        return done
