"""The refresh plan, as pure logic: margin, jitter, backoff, lifetimes."""

import base64
import json

import pytest

from bearer_auth._schedule import Schedule, backoff, lifetime_of, margin


@pytest.mark.parametrize("window, lifetime, jitter, expected", [
    (300, 7200, 0.0, 300),   # the window
    (300, 300, 0.0, 150),    # capped at half the lifetime
    (20, 60, 0.0, 20),
    (0, 60, 0.5, 0),
    (300, 7200, 0.5, 285),   # jitter: at most a tenth off
    (300, 7200, 1.0, 270),
    (300, 7200, 7.0, 270),
    (300, 7200, -1.0, 300),
])
def test_the_margin_is_the_window_capped_at_half_the_lifetime_less_jitter(window, lifetime, jitter, expected):
    assert margin(window, lifetime, jitter) == pytest.approx(expected)


def test_backoff_doubles_from_one_second_to_thirty():
    assert [backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def jwt(claims):
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{payload}.c2ln"


def test_the_lifetime_comes_from_iat_and_exp_or_nothing():
    assert lifetime_of(jwt({"iat": 1000, "exp": 1060})) == 60
    for odd in ["opaque", "a.%%%.c", jwt({"iat": 1000}), jwt({"iat": 1060, "exp": 1000}),
                jwt({"iat": "1000", "exp": 1060}), jwt([1, 2])]:
        assert lifetime_of(odd) is None, odd


def test_a_new_token_is_refreshed_a_margin_before_expiry_counted_from_sending():
    schedule = Schedule(300)
    assert schedule.granted("a", 7200, 100.0, 101.0, jitter=0.0) == "a"
    held = schedule.valid(101.0)
    assert (held.expires_at, held.refresh_at) == (7300.0, 7000.0)
    assert schedule.valid(7300.0) is None


def test_the_token_already_held_is_asked_for_again_at_a_tenth_of_its_time_left():
    schedule = Schedule(300)
    schedule.granted("a", 7200, 0.0, 0.0, jitter=0.0)
    schedule.granted("a", 300, 6900.0, 6900.0)
    assert schedule.valid(6900.0).refresh_at == 6930.0
    schedule.granted("a", 5, 7195.0, 7195.0)
    assert schedule.valid(7195.0).refresh_at == 7196.0


def test_a_failed_refresh_keeps_the_token_and_backs_off_and_a_success_resets_it():
    schedule = Schedule(300)
    schedule.granted("a", 7200, 0.0, 0.0, jitter=0.0)
    schedule.failed(6950.0)
    assert schedule.valid(6950.0).refresh_at == 6951.0
    schedule.failed(6951.0)
    assert schedule.valid(6951.0).refresh_at == 6953.0
    schedule.granted("b", 7200, 6953.0, 6953.0, jitter=0.0)
    schedule.failed(6954.0)
    assert schedule.valid(6954.0).refresh_at == 6955.0


def test_a_failure_with_no_valid_token_left_holds_nothing():
    schedule = Schedule(300)
    schedule.granted("a", 60, 0.0, 0.0)
    schedule.failed(61.0)
    assert schedule.take() is None


def test_invalidate_drops_only_the_token_it_names():
    schedule = Schedule(300)
    schedule.granted("a", 7200, 0.0, 0.0)
    schedule.invalidate("b")
    assert schedule.valid(0.0) is not None
    schedule.invalidate("a")
    assert schedule.valid(0.0) is None


def test_the_held_token_is_not_in_the_schedules_repr():
    schedule = Schedule(300)
    schedule.granted("secret-token", 7200, 0.0, 0.0)
    assert "secret-token" not in repr(schedule.valid(0.0))
