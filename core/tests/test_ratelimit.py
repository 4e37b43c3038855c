import pytest

from core.ratelimit import Limit, RateLimited, check, hit


def test_a_window_allows_its_count_then_says_how_long_to_wait():
    limit = Limit(3, 60)
    assert [hit("s", "1.2.3.4", limit, now=1000.0) for _ in range(3)] == [0, 0, 0]
    # The window began at 960 and ends at 1020.
    assert hit("s", "1.2.3.4", limit, now=1000.0) == 20
    assert hit("s", "5.6.7.8", limit, now=1000.0) == 0  # another client
    assert hit("other", "1.2.3.4", limit, now=1000.0) == 0  # another scope
    assert hit("s", "1.2.3.4", limit, now=1021.0) == 0  # the next window


def test_check_raises_429_with_retry_after_for_the_strictest_limit():
    limits = {"ip": ("9.9.9.9", Limit(2, 60)), "account": ("", Limit(1, 60))}
    check("report", limits)
    check("report", limits)
    with pytest.raises(RateLimited) as caught:
        check("report", limits)
    assert caught.value.status_code == 429
    assert 1 <= caught.value.retry_after <= 60
