"""Reading a server's JSON request log, for the suites that count requests."""

import json


def answered(log, route):
    """Requests to `route` (the log's label, e.g. "/auth/login") answered in
    `log`: one JSON line per request, written before the answer goes out."""
    seen = 0
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        seen += entry.get("message") == "request" and entry.get("route") == route
    return seen
