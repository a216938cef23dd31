"""The events/ fixtures for login and verify, as `cargo lambda invoke
--data-file` sends them: as written (placeholders), and with a real key or
token filled in."""

import json


def status_and_error(response):
    return response["statusCode"], json.loads(response["body"]).get("error")


def test_login_json_as_written_is_refused_with_401_invalid_client(watch):
    response = watch.invoke("login", "login.json")
    assert status_and_error(response) == (401, "invalid_client"), response


def test_login_json_with_a_real_key_logs_in_its_session_worker_1(watch, key):
    response = watch.invoke("login", "login.json", {"__API_KEY__": key["api_key"]})
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["session_id"] == "worker-1"


def test_verify_json_with_that_token_is_200_active(watch, fixture_token):
    response = watch.invoke("verify", "verify.json", {"__TOKEN__": fixture_token})
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["active"] is True


def test_verify_json_as_written_is_refused_with_401_invalid_token(watch):
    response = watch.invoke("verify", "verify.json")
    assert status_and_error(response) == (401, "invalid_token"), response
