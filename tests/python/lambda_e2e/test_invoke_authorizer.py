"""The authorizer binary on the events/authorizer/ fixtures, through `cargo
lambda invoke`, for each API Gateway shape, with the routes
GET /v1/whoami=read and POST /v1/documents=write documents:write."""

import pytest

SHAPES = [pytest.param("http-api-v1", id="HTTP API payload 1.0"), pytest.param("rest-request", id="REST REQUEST")]


def policy_statement(response):
    """The (Effect, Resource) of an authorizer policy's single statement."""
    statements = response.get("policyDocument", {}).get("Statement", [])
    assert len(statements) == 1, response
    return statements[0].get("Effect"), statements[0].get("Resource")


def invoke(watch, fixture, token):
    return watch.invoke("authorizer", f"authorizer/{fixture}", {"__TOKEN__": token})


def test_an_http_api_request_with_a_valid_token_is_authorized_with_its_context(watch, fixture_token, key):
    response = invoke(watch, "http-api-valid.json", fixture_token)
    assert response["isAuthorized"] is True, response
    assert response["context"]["sub"] == key["key_id"]


def test_an_http_api_route_needing_another_scope_is_not_authorized(watch, fixture_token):
    response = invoke(watch, "http-api-missing-scope.json", fixture_token)
    assert response["isAuthorized"] is False, response


def test_a_rest_token_request_with_a_valid_token_gets_a_policy_allowing_get_v1_whoami_only(watch, fixture_token, key):
    response = invoke(watch, "rest-token-valid.json", fixture_token)
    assert response["principalId"] == key["key_id"], response
    allowed = [r for s in response["policyDocument"]["Statement"] if s.get("Effect") == "Allow"
               for r in s.get("Resource", [])]
    assert allowed == ["arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/v1/whoami"], response


def test_a_rest_token_request_for_an_unlisted_route_gets_a_deny_of_that_method(watch, fixture_token):
    fixture = "rest-token-unlisted-route.json"
    response = invoke(watch, fixture, fixture_token)
    assert policy_statement(response) == ("Deny", [watch.arn_of(f"authorizer/{fixture}")])


@pytest.mark.parametrize("shape", SHAPES)
def test_a_valid_token_gets_a_policy_allowing_that_method_only(watch, fixture_token, key, shape):
    fixture = f"{shape}-valid.json"
    response = invoke(watch, fixture, fixture_token)
    assert response["principalId"] == key["key_id"], response
    assert policy_statement(response) == ("Allow", [watch.arn_of(f"authorizer/{fixture}")])


@pytest.mark.parametrize("shape", SHAPES)
def test_a_route_needing_another_scope_gets_a_deny_of_that_method(watch, fixture_token, shape):
    fixture = f"{shape}-missing-scope.json"
    response = invoke(watch, fixture, fixture_token)
    assert policy_statement(response) == ("Deny", [watch.arn_of(f"authorizer/{fixture}")])


def test_an_http_api_payload_1_0_request_without_a_token_gets_a_deny_for_anonymous(watch):
    response = watch.invoke("authorizer", "authorizer/http-api-v1-no-header.json")
    assert response["principalId"] == "anonymous", response
    assert policy_statement(response)[0] == "Deny"


@pytest.mark.parametrize("fixture", [
    pytest.param("rest-token-no-header.json", id="REST TOKEN"),
    pytest.param("rest-request-no-header.json", id="REST REQUEST"),
])
def test_a_request_without_a_token_gets_the_error_unauthorized_and_no_policy(watch, fixture):
    printed = watch.invoke_error("authorizer", f"authorizer/{fixture}")
    assert "Unauthorized" in printed
    assert "policyDocument" not in printed
