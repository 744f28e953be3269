"""`soc scan`: the stream's detection engine over files, as an incident responder runs Hayabusa
or Chainsaw on a seized server. Same normalizers, same rules, same correlations, same alerts;
alerts go out as JSON lines, a summary at the end."""

from __future__ import annotations

import io
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from itertools import islice
from pathlib import Path
from typing import IO, Any

from soc.detect.alerts import build_alert, build_correlation_alert
from soc.detect.correlation import CorrelationEngine, Match
from soc.detect.rules import RuleSet
from soc.detect.stage import Detection, event_time
from soc.normalize import NormalizeOptions
from soc.scan.readers import (
    FoundFile,
    ReadProblem,
    ScannedEvent,
    Span,
    list_files,
    read_file,
    split_file,
)
from soc.scan.timeline import header, renderer

#: Progress is redrawn at most this often (seconds).
_PROGRESS_EVERY = 0.5


@dataclass
class ScanSummary:
    events: int = 0
    files: set[str] = field(default_factory=set)
    alerts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    problems: list[ReadProblem] = field(default_factory=list)
    seconds: float = 0.0
    #: Stopped by an interrupt (Ctrl-C): the counts are of what was read until then, and the
    #: correlations' open windows were not closed (a count or an absence decided on part of
    #: the evidence would be wrong).
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def by_rule(self) -> list[tuple[tuple[str, str, str], int]]:
        """Alerts per rule, most first, ties by name and id: the same order however the
        scan's files were shared out."""
        return sorted(self.alerts.items(), key=lambda item: (-item[1], item[0][1], item[0][0]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": len(self.files),
            "events": self.events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.rate, 1),
            "interrupted": self.interrupted,
            "alerts": sum(self.alerts.values()),
            "alerts_by_rule": [
                {"id": rule_id, "name": name, "level": level, "count": count}
                for (rule_id, name, level), count in self.by_rule()
            ],
            "problems": [
                {"path": p.path, "record": p.record, "reason": p.reason} for p in self.problems
            ],
        }


def _located(alert: dict[str, Any], scanned: ScannedEvent | None) -> dict[str, Any]:
    """Where the alert came from: the file and the record number within it."""
    if scanned is not None:
        alert["log"] = {"file": {"path": scanned.path, "record": scanned.record}}
    return alert


def _outcomes(
    ruleset: RuleSet, engine: CorrelationEngine, item: ScannedEvent
) -> Iterator[Match | dict[str, Any]]:
    """What the event's matches make, in order: a Match for each rule a correlation counts,
    an alert for each rule that still raises its own."""
    event = item.event
    for rule in ruleset.match(event):
        if engine.wants(rule.id, rule.name):
            yield Match(rule.id, rule.name, event_time(event), event, event["event"]["id"])
        if engine.generate(rule.id, rule.name):
            yield _located(build_alert(rule, event), item)


def default_jobs() -> int:
    """Worker processes when the caller names none: one per CPU this process may use, at most
    eight (each holds a copy of what the rules touch: memory, not speed, is the bound)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_DEFAULT_JOBS))


_MAX_DEFAULT_JOBS = 8


def scan(
    paths: Sequence[Path],
    ruleset: RuleSet,
    output: IO[bytes],
    *,
    timezone: tzinfo,
    progress: IO[str] | None = None,
    jobs: int = 1,
    output_format: str = "jsonl",
) -> ScanSummary:
    """Every event of the files under `paths` through the rules; alerts to `output` as JSON
    lines. `jobs` > 1: files are read, normalized and matched in that many worker processes,
    forked once the rules are loaded, while this process keeps the correlations (they see
    the matches of every file in file order, as one process would) and writes the alerts,
    each file's after the one before. A large file is read in parts by several workers
    (`split_file`), its records numbered as one process numbers them. The alerts are the same
    as with one job; within a file (or part), its correlations' alerts come after its
    single-event ones."""
    output.write(header(output_format))
    run = _Run(ruleset, output, progress, renderer(output_format))
    try:
        _scan(run, paths, timezone, jobs)
    except KeyboardInterrupt:
        run.summary.interrupted = True
    return run.finish()


def _scan(run: _Run, paths: Sequence[Path], timezone: tzinfo, jobs: int) -> None:
    files = list(list_files(paths))
    tasks = sum(
        max(1, found.size // _PART_BYTES) for found in files if not isinstance(found, ReadProblem)
    )
    workers = min(jobs, tasks)
    if workers > 1 and "fork" in multiprocessing.get_all_start_methods():
        _scan_in_workers(run, files, workers, timezone)
    else:
        options = NormalizeOptions(timezone=timezone)
        for found in files:
            if isinstance(found, ReadProblem):
                run.summary.problems.append(found)
                continue
            for item in read_file(found.path, found.name, options):
                run.item(item)
            run.draw()


class _Run:
    """One scan's correlations, alert output and summary."""

    def __init__(
        self,
        ruleset: RuleSet,
        output: IO[bytes],
        progress: IO[str] | None,
        render: Callable[[Mapping[str, Any]], bytes],
    ) -> None:
        self.ruleset = ruleset
        self.output = output
        self.progress = progress
        #: One alert as the output's format writes it (`soc.scan.timeline`).
        self.render = render
        self.summary = ScanSummary()
        # Files are read one after another, not in time order: allow any disorder in a month.
        self.engine = Detection.from_rules(ruleset, allowed_lateness=30 * 86400.0).correlations
        self.started = self.last_drawn = time.perf_counter()
        self.latest = 0.0

    def emit(self, alert: dict[str, Any]) -> None:
        rule = alert["rule"]
        self.summary.alerts[rule["id"], rule["name"], rule["level"]] += 1
        self.output.write(self.render(alert))

    def correlate(self, match: Match) -> None:
        self.latest = max(self.latest, match.timestamp)
        for hit in self.engine.process(match):
            if hit.raise_alert:
                self.emit(build_correlation_alert(hit))

    def item(self, item: ScannedEvent | ReadProblem) -> None:
        """One event (or problem) read in this process: matched, correlated, alerted."""
        if isinstance(item, ReadProblem):
            self.summary.problems.append(item)
            return
        self.summary.events += 1
        self.summary.files.add(item.path)
        for outcome in _outcomes(self.ruleset, self.engine, item):
            if isinstance(outcome, Match):
                self.correlate(outcome)
            else:
                self.emit(outcome)
        if self.summary.events % 256 == 0:
            self.draw()

    def draw(self) -> None:
        if self.progress is None or time.perf_counter() - self.last_drawn <= _PROGRESS_EVERY:
            return
        self.last_drawn = time.perf_counter()
        rate = self.summary.events / (self.last_drawn - self.started)
        self.progress.write(
            f"\r{self.summary.events:,} events, {sum(self.summary.alerts.values()):,} alerts, "
            f"{len(self.summary.files)} files, {rate:,.0f} events/s"
        )
        self.progress.flush()

    def finish(self) -> ScanSummary:
        # Files are not in time order across each other: close every window at the end.
        if not self.summary.interrupted:
            for hit in self.engine.advance(self.latest + 10 * 365 * 86400.0):
                if hit.raise_alert:
                    self.emit(build_correlation_alert(hit))
        self.summary.seconds = time.perf_counter() - self.started
        if self.progress is not None:
            self.progress.write("\n")
        return self.summary


# --- worker processes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Task:
    """What a worker reads: a whole file, or one part of a large one."""

    found: FoundFile
    span: Span | None = None

    @property
    def size(self) -> int:
        if self.span is None:
            return self.found.size
        size = self.span.size
        return self.found.size - self.span.start if size is None else size


@dataclass
class _FileResult:
    """What a worker found in one file (or part of one), for the scanning process to take in
    file order."""

    path: str
    events: int = 0
    problems: list[ReadProblem] = field(default_factory=list)
    alerts: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: The file's single-event alerts as JSON lines: in memory, or in a spill file when large.
    lines: bytes = b""
    spilled: str | None = None
    #: Matches of rules correlations reference, in the file's order.
    matches: list[Match] = field(default_factory=list)
    #: The number of the last record read (the next part's records come after it).
    last_record: int = 0
    #: Whether reading stopped on an error that ends the file (its later parts are not read).
    ended: bool = False


_Render = Callable[[Mapping[str, Any]], bytes]

#: What workers inherit from the scanning process when they are forked: the rules (loaded
#: once, shared copy-on-write), which rules feed correlations, the syslog zone, the spill dir,
#: the flag that tells them to stop (the scan was interrupted), and how alerts are written.
_WORKER: tuple[RuleSet, CorrelationEngine, NormalizeOptions, str, Any, _Render] | None = None

#: Workers look at the stop flag every this many records.
_STOP_EVERY = 64

#: A file's alerts beyond this many bytes go to a spill file, not through the result pipe.
_SPILL_BYTES = 8 << 20


#: Files go to workers in batches of about this many bytes (or this many files): one file of a
#: record or two per task spent more in passing tasks and results than in reading the file.
_BATCH_BYTES = 4 << 20
_BATCH_FILES = 64

#: A file of at least twice this many bytes is read in parts of about this size, each by the
#: next free worker: one large EVTX or access log would otherwise keep one CPU busy and the
#: rest idle. A part is a second or a few of work (40k syslog lines, 3k Windows events):
#: enough parts to spread, each long enough that passing it costs nothing.
_PART_BYTES = 4 << 20

_Entry = _Task | ReadProblem


def _plan(files: list[FoundFile | ReadProblem]) -> Iterator[_Entry]:
    """The files as tasks, large ones split into parts (planned as they are reached), with
    the problems met listing them in their place."""
    for found in files:
        if isinstance(found, ReadProblem):
            yield found
            continue
        spans = split_file(found.path, found.size, _PART_BYTES)
        if spans is None:
            yield _Task(found)
        else:
            yield from (_Task(found, span) for span in spans)


def _batches(entries: Iterator[_Entry]) -> Iterator[list[_Entry]]:
    batch: list[_Entry] = []
    size = tasks = 0
    for entry in entries:
        batch.append(entry)
        if isinstance(entry, _Task):
            size += entry.size
            tasks += 1
            if size >= _BATCH_BYTES or tasks >= _BATCH_FILES:
                yield batch
                batch, size, tasks = [], 0, 0
    if batch:
        yield batch


def _scan_tasks(tasks: list[_Task]) -> list[_FileResult]:
    return [_scan_task(task) for task in tasks]


def _scan_task(task: _Task) -> _FileResult:
    assert _WORKER is not None, "scan worker not forked from a scan"
    ruleset, engine, options, spill_dir, stop, render = _WORKER
    path, name, _size = task.found
    result = _FileResult(name)
    if task.span is not None:
        result.last_record = task.span.base
    buffer = io.BytesIO()
    spill: IO[bytes] | None = None
    for read, item in enumerate(read_file(path, name, options, task.span), 1):
        if read % _STOP_EVERY == 0 and stop.is_set():
            result.ended = True
            break
        result.last_record = item.record
        if isinstance(item, ReadProblem):
            result.problems.append(item)
            result.ended = result.ended or item.ends_file
            continue
        result.events += 1
        for outcome in _outcomes(ruleset, engine, item):
            if isinstance(outcome, Match):
                result.matches.append(outcome)
            else:
                rule = outcome["rule"]
                result.alerts[rule["id"], rule["name"], rule["level"]] += 1
                (spill or buffer).write(render(outcome))
        if spill is None and buffer.tell() > _SPILL_BYTES:
            spill = tempfile.NamedTemporaryFile(dir=spill_dir, delete=False)  # noqa: SIM115
            spill.write(buffer.getvalue())
            buffer = io.BytesIO()
    if spill is not None:
        spill.close()
        result.spilled = spill.name
    else:
        result.lines = buffer.getvalue()
    return result


def _scan_in_workers(
    run: _Run,
    files: list[FoundFile | ReadProblem],
    workers: int,
    timezone: tzinfo,
) -> None:
    global _WORKER
    spill_dir = tempfile.mkdtemp(prefix="soc-scan-")
    fork = multiprocessing.get_context("fork")
    stop = fork.Event()
    options = NormalizeOptions(timezone=timezone)
    _WORKER = (run.ruleset, run.engine, options, spill_dir, stop, run.render)
    batches = _batches(_plan(files))
    parts = _Parts()
    try:
        with ProcessPoolExecutor(workers, mp_context=fork, initializer=_worker_start) as pool:

            def submit(batch: list[_Entry]) -> tuple[list[_Entry], Future[list[_FileResult]]]:
                tasks = [entry for entry in batch if isinstance(entry, _Task)]
                return batch, pool.submit(_scan_tasks, tasks)

            # A few batches ahead of the one being taken, not all: results wait here in memory.
            pending = deque(submit(batch) for batch in islice(batches, workers * 3))
            try:
                _take_in_order(run, pending, batches, submit, parts)
            except KeyboardInterrupt:
                # Tasks not started are dropped, the workers' current ones end at their next
                # look at the flag. (Terminating the workers instead could cut a result in the
                # middle of the pipe, and the executor would wait for the rest of it forever.)
                stop.set()
                pool.shutdown(wait=True, cancel_futures=True)
                raise
    finally:
        _WORKER = None
        shutil.rmtree(spill_dir, ignore_errors=True)


def _worker_start() -> None:
    """Workers leave an interrupt (Ctrl-C reaches the whole process group) to the scanning
    process, which tells them to stop: none prints a traceback or dies mid-result."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _take_in_order(
    run: _Run,
    pending: deque[tuple[list[_Entry], Future[list[_FileResult]]]],
    batches: Iterator[list[_Entry]],
    submit: Callable[[list[_Entry]], tuple[list[_Entry], Future[list[_FileResult]]]],
    parts: _Parts,
) -> None:
    while pending:
        batch, future = pending.popleft()
        following = next(batches, None)
        if following is not None:
            pending.append(submit(following))
        try:
            results = iter(future.result())
        except BrokenProcessPool:
            raise ScanError(
                "a scan worker process died (out of memory?): scan again with --jobs 1"
            ) from None
        for entry in batch:
            if isinstance(entry, ReadProblem):
                run.summary.problems.append(entry)
                continue
            result = parts.checked(entry, next(results))
            if result is not None:
                _take(run, result)
            run.draw()


class _Parts:
    """The parts of the split file being taken, in order: each part's records must be numbered
    on from the last record of the part before it, and a part that ended the file (an error
    the reader could not step over) ends it for the parts after it, as reading it whole
    would."""

    def __init__(self) -> None:
        self.last_record = 0
        self.ended = False

    def checked(self, task: _Task, result: _FileResult) -> _FileResult | None:
        """The result to take for this task (read again here, in this process, when its
        predicted numbering proved wrong); None when the file ended before it."""
        span = task.span
        if span is None:
            return result
        if span.index == 0:
            self.last_record, self.ended = 0, False
        if self.ended:
            _discard(result)
            return None
        if not span.counted and span.base != self.last_record:
            _discard(result)
            result = _scan_task(replace(task, span=replace(span, base=self.last_record)))
        self.last_record = result.last_record
        self.ended = result.ended
        return result


def _discard(result: _FileResult) -> None:
    if result.spilled is not None:
        os.unlink(result.spilled)


def _take(run: _Run, result: _FileResult) -> None:
    summary = run.summary
    summary.events += result.events
    if result.events:
        summary.files.add(result.path)
    summary.problems.extend(result.problems)
    summary.alerts.update(result.alerts)
    if result.spilled is not None:
        with open(result.spilled, "rb") as spilled:
            shutil.copyfileobj(spilled, run.output)
        os.unlink(result.spilled)
    else:
        run.output.write(result.lines)
    for match in result.matches:
        run.correlate(match)


class ScanError(RuntimeError):
    """The scan could not go on (not a problem with one file: those are in the summary)."""


def print_summary(summary: ScanSummary, stream: IO[str] | None = None) -> None:
    """The summary for a reader: to `stream`, or to stderr as it is at the call."""
    stream = stream if stream is not None else sys.stderr
    stream.write(
        f"{summary.events:,} events from {len(summary.files)} files in {summary.seconds:.2f} s "
        f"({summary.rate:,.0f} events/s); {sum(summary.alerts.values()):,} alerts\n"
    )
    for (_, name, level), count in summary.by_rule():
        stream.write(f"  {count:>7,}  {level:<13} {name}\n")
    for problem in summary.problems:
        stream.write(f"  problem: {problem.path} record {problem.record}: {problem.reason}\n")
    if summary.interrupted:
        stream.write(
            "interrupted: the counts and alerts are of what was read until then; correlation "
            "windows still open were not closed\n"
        )
