"""`GET /metrics` on a real `authctl serve` of its own: after a known mix of
requests, the counters parsed with the Prometheus client's OpenMetrics
parser are exactly what was asked, and the histogram counts every request."""

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import serve

ROUTES = ("/auth/login", "/auth/verify", "/auth/revoke", "unknown")


@pytest.fixture(scope="module")
def fresh(authctl, spawn, out, tmp_path_factory):
    """A server nobody else talks to, so every count is this module's."""
    with serve(authctl, spawn, out / "metrics-server.log", tmp_path_factory.mktemp("metrics")) as server:
        yield server


def scrape(base):
    r = requests.get(f"{base}/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/openmetrics-text"), r.headers
    return {f.name: f for f in text_string_to_metric_families(r.text)}


def counted(families, name, route):
    """The value of counter `name` for the route, 0 when it has no series."""
    samples = [s for s in families[f"bearer_auth_{name}"].samples
               if s.name.endswith("_total") and s.labels == {"function": "authctl", "route": route}]
    assert len(samples) <= 1, samples
    return samples[0].value if samples else 0


def login(base, key, session):
    r = requests.post(f"{base}/auth/login", json={"api_key": key, "session_id": session}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def test_the_counters_are_exactly_the_requests_made(fresh):
    base, key = fresh.base, fresh.starter_key
    assert f"Metrics: {base}/metrics" in fresh.printed
    token = login(base, key, "s1")
    assert login(base, key, "s1") == token
    login(base, key, "s2")
    bearer = {"authorization": f"Bearer {token}"}
    for _ in range(2):
        assert requests.get(f"{base}/auth/verify", headers=bearer, timeout=10).status_code == 200
    r = requests.get(f"{base}/auth/verify", headers={"authorization": "Bearer nonsense"}, timeout=10)
    assert r.status_code == 401
    assert requests.post(f"{base}/auth/revoke", headers=bearer, timeout=10).status_code == 200
    assert requests.get(f"{base}/nowhere", timeout=10).status_code == 404
    r = requests.post(f"{base}/metrics", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD", r.headers

    families = scrape(base)
    want = {
        # name: (login, verify, revoke, unknown)
        "requests": (3, 3, 1, 1),
        "client_errors": (0, 1, 0, 1),
        "server_errors": (0, 0, 0, 0),
        "backend_unavailable": (0, 0, 0, 0),
        "tokens_minted": (2, 0, 0, 0),
        "tokens_reused": (1, 0, 0, 0),
        "revocations": (0, 0, 1, 0),
        "authorizer_denied": (0, 0, 0, 0),
        "dynamodb_calls": (0, 0, 0, 0),
    }
    got = {name: tuple(counted(families, name, route) for route in ROUTES) for name in want}
    assert got == want

    latency = families["bearer_auth_request_duration_seconds"]
    assert latency.type == "histogram"
    for route, requests_made in zip(ROUTES, want["requests"]):
        samples = [s for s in latency.samples if s.labels.get("route") == route]
        count = next(s.value for s in samples if s.name.endswith("_count"))
        buckets = [s for s in samples if s.name.endswith("_bucket")]
        assert count == requests_made, route
        assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == count, buckets
        values = [b.value for b in buckets]
        assert values == sorted(values), f"{route}: buckets are cumulative"

    # Scraping is not a request of the service: a second scrape counts the same.
    again = scrape(base)
    assert {name: tuple(counted(again, name, r) for r in ROUTES) for name in want} == want


def test_no_metrics_leaves_the_path_to_the_service_which_has_none(authctl, spawn, out, tmp_path_factory):
    data = tmp_path_factory.mktemp("no-metrics")
    with serve(authctl, spawn, out / "no-metrics-server.log", data, "--no-metrics") as server:
        assert "Metrics:" not in server.printed
        r = requests.get(f"{server.base}/metrics", timeout=10)
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
