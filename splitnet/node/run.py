"""Which run this client writes into: made by the aggregator, learnt by the others at join.

Note: a run owns its folder (see :mod:`splitnet.telemetry.runs`). The aggregator
(``SERVER_NUMBER``) starts the run before it serves peers (a fresh id, or ``RUN_ID``) and
announces the id in every join, both ways; another client opens its result files in the run's
folder when its join with the aggregator completes (whichever side called). A malformed id, or one
other than the run this client is in (its ``RUN_ID``, or the id it learnt first), is a refused
join naming the peer and the id. What other clients announce is ignored (they announce nothing).
"""

from __future__ import annotations

import logging

from splitnet.config.parsing import run_id as parse_run_id
from splitnet.config.parsing import show
from splitnet.errors import ConfigError, ProtocolError
from splitnet.node.resume import Resume
from splitnet.telemetry.results import ResultsWriter
from splitnet.telemetry.runs import check_unfinished

__all__ = ["RunId", "start_run"]

log = logging.getLogger("splitnet.node")


class RunId:
    """The run id of client ``me``: announced when it is the aggregator, learnt otherwise."""

    def __init__(self, results: ResultsWriter, me: int, aggregator: int,
                 configured: str | None) -> None:
        self._results = results
        self._me = me
        self._aggregator = aggregator
        self._configured = configured

    def announced(self) -> str:
        """Return the run id this client announces in joins ("" unless it is the aggregator)."""
        if self._me != self._aggregator or self._results.run_id is None:
            return ""
        return self._results.run_id

    def learn(self, sender: int, run_id: str) -> None:
        """Take the run id ``sender`` announced in a join (only the aggregator's counts).

        Raises ProtocolError when it is malformed or names another run than this client's.
        """
        if sender != self._aggregator or self._me == self._aggregator:
            return
        try:
            parse_run_id(run_id)
        except ValueError as exc:
            raise ProtocolError(f"client {self._me} refused the run id {show(run_id)} of client "
                                f"{sender} (the aggregator): {exc}") from None
        known = self._results.run_id or self._configured
        if known is not None and run_id != known:
            why = "its RUN_ID" if self._results.run_id is None else "the run it joined first"
            raise ProtocolError(f"client {sender} (the aggregator) announced run {show(run_id)}, "
                                f"but client {self._me} is in run {show(known)} ({why})")
        if self._results.run_id is None:
            folder = self._results.follow(run_id)
            log.info("client %d: run %s, results in %s", self._me, run_id, folder)


def start_run(results: ResultsWriter, run_id: str | None, resume: Resume, *,
              aggregator: bool) -> None:
    """Start the run on the aggregator; refuse a ``RUN_ID`` of a finished run on any client.

    Note: a run owns its folder (telemetry/runs.py). A resuming aggregator goes on in its
    checkpoints' run, unless that run is finished or ``RUN_ID`` names another (then nobody
    resumes).
    """
    if run_id is not None:
        check_unfinished(results.results_dir, run_id)
    if not aggregator:
        return
    if run_id is not None and resume.run_id not in (None, run_id):
        resume.forget(f"they belong to run {resume.run_id}; this is run {run_id} (RUN_ID)")
    elif run_id is None and resume.run_id is not None:
        try:
            check_unfinished(results.results_dir, resume.run_id)
            run_id = resume.run_id
        except ConfigError:
            resume.forget(f"run {resume.run_id} is finished")
    folder = results.start(run_id)
    log.info("client %d: run %s, results in %s", resume.store.client, results.run_id, folder)
