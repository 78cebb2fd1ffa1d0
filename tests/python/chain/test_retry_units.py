"""pollen/retry.py: the one retry-with-backoff helper and the one poll-until helper."""

from __future__ import annotations

import pytest

from pollen.retry import retry, wait_until


def test_retry_retries_only_the_named_errors_with_growing_capped_delays():
    calls, delays = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError("down")
        return "up"

    assert retry(flaky, retry_on=(ConnectionError,), attempts=5, base_delay=1.0, max_delay=2.0,
                 sleep=delays.append) == "up"
    assert len(calls) == 4 and len(delays) == 3
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 1.0 <= delays[2] <= 2.0  # capped
    with pytest.raises(ValueError, match="bad"):  # not retryable: raised at once
        retry(lambda: (_ for _ in ()).throw(ValueError("bad")), retry_on=(ConnectionError,), sleep=delays.append)
    assert len(delays) == 3


def test_retry_gives_up_with_the_last_error():
    with pytest.raises(ConnectionError, match="3"):
        n = iter(range(1, 10))
        retry(lambda: (_ for _ in ()).throw(ConnectionError(str(next(n)))), retry_on=(ConnectionError,),
              attempts=3, sleep=lambda _: None)


def test_wait_until_polls_until_true_and_raises_the_callers_error_past_the_deadline():
    now = [0.0]
    state = iter([False, False, True])
    wait_until(lambda: next(state), 10, lambda: TimeoutError("never"), poll_s=1.0,
               sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert now[0] == 2.0
    with pytest.raises(TimeoutError, match="no block after 5 s"):
        wait_until(lambda: False, 5, lambda: TimeoutError("no block after 5 s"), poll_s=1.0,
                   sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
