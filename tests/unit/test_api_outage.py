"""The pieces of a lost Prefect server's handling that need no server: the one line it says, what it changes in
the process while the server is away (and puts back), and the Prefect internals it relies on, checked against
the installed Prefect so an upgrade that moves them fails here, not as a ten-minute exit."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.events.clients import NullEventsClient
from prefect.events.worker import EventsWorker
from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, get_current_settings

from vqa_distill import progress
from vqa_distill.cli import api_outage
from vqa_distill.cli.api_outage import ApiWatch, drop_undelivered

NOWHERE = "http://127.0.0.1:9/api"  # nothing listens on port 9: every probe is refused at once


@pytest.fixture(autouse=True)
def fast_probes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Probe at once, and put back what a lost server changes in the process (the command would exit instead)."""
    monkeypatch.setattr(api_outage, "PROBE_EVERY_S", 0.01)
    monkeypatch.setattr(api_outage, "GONE_AFTER_S", 0.0)
    settings = get_current_settings()
    retries, raising = settings.client.max_retries, logging.raiseExceptions
    yield
    settings.client.max_retries, logging.raiseExceptions = retries, raising
    loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for handler in {h for logger in loggers for h in getattr(logger, "handlers", [])}:
        for quiet in [f for f in handler.filters if isinstance(f, api_outage._PrefectQuiet)]:
            handler.removeFilter(quiet)


def test_a_run_that_fails_without_its_server_ends_in_one_line_saying_what_is_kept(tmp_path: Path) -> None:
    with ApiWatch(tmp_path, api_url=NOWHERE) as watch:
        (tmp_path / "train.jsonl").write_text("{}\n")  # the run's dataset
        tally = progress.begin(40)
        for _ in range(40):
            tally.record("answered")
            tally.advance(paid=True)
        progress.report(tally)
        raise RuntimeError("Failed to reach API")  # what Prefect raises: the watch takes it
    assert watch.message is not None and "\n" not in watch.message
    assert watch.message.startswith(f"the Prefect server at {NOWHERE} stopped answering during the run: ")
    assert f"40 of 40 requests done and kept in the ledger in {tmp_path} (40 answered now" in watch.message
    assert f"the dataset written ({tmp_path / 'train.jsonl'})" in watch.message


def test_a_run_lost_before_it_asked_says_so_and_an_interrupt_goes_through(tmp_path: Path) -> None:
    with ApiWatch(tmp_path, api_url=NOWHERE) as watch:
        pass
    assert watch.message is not None and "(nothing was asked)" in watch.message
    with pytest.raises(KeyboardInterrupt), ApiWatch(tmp_path, api_url=NOWHERE):
        raise KeyboardInterrupt


def test_while_the_server_is_gone_prefect_stops_retrying_and_keeps_quiet_until_it_is_back() -> None:
    retries, raising = get_current_settings().client.max_retries, logging.raiseExceptions
    outage = api_outage._Outage()
    handler = logging.StreamHandler()
    logging.getLogger("vqa-distill-test").addHandler(handler)
    in_prefect = api_outage._PrefectQuiet().package + "/events/clients.py"
    prefect_record = logging.LogRecord("prefect.events.clients", logging.WARNING, in_prefect, 1, "lost", None, None)
    own_record = logging.LogRecord("prefect.flow_runs", logging.WARNING, __file__, 1, "ours", None, None)
    try:
        outage.quiet_log_worker()
        outage.gone()
        assert PREFECT_CLIENT_MAX_RETRIES.value() == 0  # the value Prefect's client reads at every try
        assert logging.raiseExceptions is False
        assert handler.filter(prefect_record) is False and handler.filter(own_record) is True
        outage.back()
        assert PREFECT_CLIENT_MAX_RETRIES.value() == retries and handler.filter(prefect_record) is True
    finally:
        outage.back()
        outage.restore_log_worker()
        logging.getLogger("vqa-distill-test").removeHandler(handler)
    assert logging.raiseExceptions is raising


def test_undelivered_events_are_dropped_and_a_pending_stop_is_kept() -> None:
    worker = EventsWorker(NullEventsClient, ())  # not started: nothing takes from its queue
    from prefect.events import Event

    for index in range(3):
        worker._queue.put_nowait(worker._prepare_item(Event(event=f"e{index}", resource={"prefect.resource.id": "r"})))
    worker._queue.put_nowait(None)  # a drain asked for before the drop
    assert drop_undelivered() >= 3
    assert worker._queue.get_nowait() is None and worker._queue.empty() and worker._context_cache == {}
