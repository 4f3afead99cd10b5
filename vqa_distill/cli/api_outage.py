"""A Prefect server that dies during a command's run: the run goes on, the command ends soon after, in one line.

The answers are the ledger's, not Prefect's: task runs report to the server through events, so a
run whose server is gone still asks, records and builds its dataset. What went wrong without this
(measured: 40 images, 0.5 s per answer, the server killed after 10 answers): each API call the run
still made (the progress artifact, the run's artifacts, its final state) was retried for about
70 s (Prefect's client: 5 retries, 2 to 32 s apart, for a connection refused once it had
connected), then at exit Prefect emptied its queues with one failed ~7 s connection attempt per
event (``prefect.events.clients``: 11 tries) and 70 s per batch of logs, printing every event
whole as an error: more than 10 minutes before the command ended. A server gone as the run
started gave Prefect's "Failed to reach API" as a traceback.

``ApiWatch`` wraps the run and probes the server's ``/health`` every ``PROBE_EVERY_S``. While it
does not answer, what Prefect says about the lost server stays off the terminal; once it has not
answered for ``GONE_AFTER_S``, the process stops waiting for it (``_Outage``): Prefect's client
makes each call once instead of retrying it for a minute. A server that answers again undoes both.
The work itself goes on: answers keep going to the ledger, and the command ends soon after it.
When the run ends, or fails, with the server still gone, the watch says in one line which server
went away and what is saved, and drops the events and logs Prefect still holds for that server, so
the exit waits for the one delivery attempt in flight at most.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from vqa_distill import progress
from vqa_distill.supervisor import is_healthy
from vqa_distill.waiting import poll_until

PROBE_EVERY_S = 2.0
GONE_AFTER_S = 10.0  # seconds without an answer before the run stops waiting for its server
FINAL_PROBES = 2  # probes at the end of the run, PROBE_EVERY_S apart, before the server is called gone
DATASET_FILE = "train.jsonl"


class ApiWatch:
    """Watch the Prefect API during a run; ``message`` is set when the run ended without its server."""

    def __init__(self, out: str | Path | None = None, api_url: str | None = None):
        self.out = Path(out) if out else None
        self.api_url = api_url if api_url is not None else _configured_api_url()
        self.message: str | None = None
        self._tally: progress.Tally | None = None
        self._down_since: float | None = None
        self._stop = threading.Event()
        self._started = time.time()
        self._thread = threading.Thread(target=self._watch, name="vqa-distill-api-watch", daemon=True)
        self._outage = _Outage()

    def __enter__(self) -> ApiWatch:
        if self.api_url:
            progress.add_listener(self._hear)
            self._outage.quiet_log_worker()
            self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> bool:
        if not self.api_url:
            return False
        self._stop.set()
        self._thread.join()
        progress.remove_listener(self._hear)
        if isinstance(error, KeyboardInterrupt | SystemExit) or not self._still_gone():
            self._outage.back()
            self._outage.restore_log_worker()
            return False
        self._outage.gone()
        dropped = drop_undelivered()
        logging.getLogger("vqa_distill").debug("dropped %d events and logs for the lost Prefect server", dropped)
        self.message = self._saying()
        return True  # the run's error, if any, is the lost server's: the message says what to do

    def _hear(self, tally: progress.Tally) -> None:
        self._tally = tally

    def _watch(self) -> None:
        """Probe until stopped: stop waiting for the server once it is gone, wait again once it is back."""

        def probe() -> bool:
            if is_healthy(f"{self.api_url}/health"):
                self._down_since = None
                self._outage.back()
            else:
                now = time.monotonic()
                self._down_since = self._down_since or now
                self._outage.down()
                if now - self._down_since >= GONE_AFTER_S:
                    self._outage.gone()
            return self._stop.is_set()

        def pause(seconds: float) -> None:  # ends at once when the run does
            self._stop.wait(seconds)

        poll_until(probe, timeout_s=float("inf"), every_s=PROBE_EVERY_S, timed_out=RuntimeError, sleep=pause)

    def _still_gone(self) -> bool:
        """True when the server does not answer now (a few probes, unless it has been gone a while already)."""
        gone_a_while = self._down_since is not None and time.monotonic() - self._down_since >= GONE_AFTER_S
        probes = 1 if gone_a_while else FINAL_PROBES
        for attempt in range(probes):
            if is_healthy(f"{self.api_url}/health"):
                return False
            if attempt + 1 < probes:
                time.sleep(PROBE_EVERY_S)
        return True

    def _saying(self) -> str:
        """The one line: which server went away, what the run saved, what to do."""
        where = f" in {self.out}" if self.out else ""
        snapshot = self._tally.snapshot() if self._tally else None
        if snapshot is None or snapshot.done == 0:
            return (
                f"the Prefect server at {self.api_url} does not answer (nothing was asked): start it, or point "
                "PREFECT_API_URL at a running one, and run the command again"
            )
        saved = (
            f"{snapshot.done} of {snapshot.total} requests done and kept in the ledger{where} "
            f"({snapshot.answered} answered now, {snapshot.cached} from before, {snapshot.failed} failed)"
        )
        dataset = self.out / DATASET_FILE if self.out else None
        if dataset is not None and dataset.is_file() and dataset.stat().st_mtime >= self._started:
            saved += f", the dataset written ({dataset})"
        return (
            f"the Prefect server at {self.api_url} stopped answering during the run: {saved}; "
            "start it again and run the same command to finish (nothing answered is asked again)"
        )


class _Outage:
    """What this process changes while its Prefect server is away, undone when it answers again.

    - for the whole run: Prefect's log worker writes each batch it fails to deliver straight to
      stderr, unless ``logging.raiseExceptions`` is off (Python's advice for production): it is.
    - ``down``: Prefect logs each lost event whole: a filter keeps what its own code logs off every
      handler.
    - ``gone``: Prefect's client retries a refused connection 5 times over about a minute, for each
      call: ``max_retries`` of the live settings (one object, read at every try) goes to 0. A call
      already between two tries ends after its current wait.
    """

    def __init__(self) -> None:
        from prefect.settings import get_current_settings

        self.settings = get_current_settings()
        self.retries = self.settings.client.max_retries
        self.raise_exceptions = logging.raiseExceptions
        self.quiet = _PrefectQuiet()
        self.lock = threading.Lock()
        self.away = False  # whether anything below is changed now

    def quiet_log_worker(self) -> None:
        logging.raiseExceptions = False

    def restore_log_worker(self) -> None:
        logging.raiseExceptions = self.raise_exceptions

    def down(self) -> None:
        with self.lock:
            self.quiet.install()
            self.away = True

    def gone(self) -> None:
        self.down()
        with self.lock:
            self.settings.client.max_retries = 0

    def back(self) -> None:
        with self.lock:
            if self.away:
                self.settings.client.max_retries = self.retries
                self.quiet.remove()
                self.away = False


def drop_undelivered() -> int:
    """Empty the queues of Prefect's event and log services (their server is gone); return how many items went.

    Prefect 3.9 offers no public way to drop them: at exit each service waits for its whole queue
    (``_QueueServiceBase.drain``). The services and their queues are read here, in one place, and
    tests/unit/test_api_outage.py checks the installed Prefect still has them.
    """
    from prefect._internal.concurrency.services import _active_services
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    dropped = 0
    services: list[Any] = [s for s in list(_active_services) if isinstance(s, EventsWorker | APILogWorker)]
    for service in services:
        stop = False
        while True:
            try:
                item = service._queue.get_nowait()
            except queue.Empty:
                break
            service._queue.task_done()
            if item is None:  # the stop signal of a drain already asked for: keep it
                stop = True
            else:
                service._on_item_dropped(item)
                dropped += 1
        if stop:
            service._queue.put_nowait(None)
    return dropped


def _configured_api_url() -> str | None:
    """The API this process talks to (the CLI has set it before the run; None: Prefect's temporary server)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url).rstrip("/") if url else None


class _PrefectQuiet(logging.Filter):
    """Keep what Prefect's own code logs off every handler (the run's own lines, from this project, still show)."""

    def __init__(self) -> None:
        super().__init__()
        import prefect

        self.package = str(Path(prefect.__file__).parent)  # as the logging records spell their files
        self.handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.pathname).startswith(self.package)

    def install(self) -> None:
        loggers: list[Any] = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for logger in loggers:
            for handler in getattr(logger, "handlers", []):
                if handler not in self.handlers:
                    handler.addFilter(self)
                    self.handlers.append(handler)

    def remove(self) -> None:
        for handler in self.handlers:
            handler.removeFilter(self)
        self.handlers = []
