"""The unit tier: no server and no CLI. No Prefect server for the session, and a guard around every unit test.

tests/conftest.py starts a real Prefect server for the whole session (an autouse fixture); unit tests
never need one, so the fixture is replaced here by one that starts nothing. Any Prefect API call of a
unit test then fails (nothing listens at PREFECT_API_URL) instead of quietly using a server.

The guard (tests/support/unit_tier.py) is installed around each unit test's setup, call and teardown,
fixtures included, and refuses a child process (but the tools in ``ALLOWED_TOOLS``) or a listening
socket; a refusal the code under test swallowed still fails the test at the end of that phase.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from tests.support.unit_tier import UnitTierGuard, guarded_phase

_GUARD = pytest.StashKey[UnitTierGuard]()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """No Prefect server for unit tests (replaces the session server of tests/conftest.py)."""
    yield None


def _guard_of(item: pytest.Item) -> UnitTierGuard:
    if _GUARD not in item.stash:
        item.stash[_GUARD] = UnitTierGuard()
    return item.stash[_GUARD]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from guarded_phase(_guard_of(item)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from guarded_phase(_guard_of(item)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    if nextitem is None:  # the session ends here: its fixtures, which other tiers started, stop too
        return (yield)
    return (yield from guarded_phase(_guard_of(item)))


@pytest.fixture
def unit_tier_guard(request: pytest.FixtureRequest) -> UnitTierGuard:
    """This test's guard, for the guard's own tests (``take()`` what was provoked on purpose)."""
    return _guard_of(request.node)
