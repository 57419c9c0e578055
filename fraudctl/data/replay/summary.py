"""What a replay reports: progress while it runs, the summary at the end, and the exit status it implies."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from fraudctl.errors import BadInputError, ExitCode, FraudctlError, UnavailableError


@dataclass
class ReplayProgress:
    read: int  # data rows read (after --skip; reading runs a little ahead of sending)
    rows_sent: int  # data rows up to the last transaction produced (after --skip)
    produced: int  # events handed to the producer
    delivered: int
    fraction: float | None  # of the work, when known


@dataclass
class ReplaySummary:
    file: str
    format: str
    preset: str
    mapping: dict[str, str]
    extra_columns: list[str]
    ignored_columns: list[str]
    time_format: str
    topics: dict[str, str | None]
    read: int = 0  # data rows in range (after --skip, up to --limit), rejected ones included
    skipped: int = 0
    rejected: int = 0
    transactions: int = 0  # transaction events produced
    labels: int = 0  # label events produced
    labels_pending: int = 0  # label events not produced (interrupted before they were due)
    produced: int = 0
    delivered: int = 0
    failed: int = 0
    unconfirmed: int = 0  # produced, but no delivery report before giving up (after a second Ctrl-C)
    out_of_order: int = 0  # transactions earlier in event time than one before them in the file
    resume_skip: int | None = None  # --skip that resumes after the last transaction produced
    wall_seconds: float = 0.0
    events_per_second: float = 0.0
    interrupted: bool = False
    rejects_file: str | None = None
    first_failure: str | None = None
    broker_errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["wall_seconds"] = round(self.wall_seconds, 3)
        data["events_per_second"] = round(self.events_per_second, 1)
        return data


class ReplayInterrupted(FraudctlError):
    """Ctrl-C (or SIGTERM) stopped a replay; raised by the CLI after it printed the summary."""

    exit_code = ExitCode.INTERRUPTED


def raise_for_outcome(summary: ReplaySummary, max_errors: int) -> None:
    """The exit status of a finished replay: undelivered events, then too many rejects."""
    lost = summary.failed + summary.unconfirmed
    if lost:
        raise UnavailableError(
            f"{lost:,} of {summary.produced:,} events were not delivered"
            + (f": {summary.first_failure}" if summary.first_failure else ""),
            hint="check the broker (`fraudctl status`, `fraudctl logs kafka`); the transaction ids are in "
                 "the file, so a replay with --skip resumes where you choose")
    if summary.rejected > max_errors:
        raise BadInputError(
            f"{summary.rejected:,} row(s) rejected, more than --max-errors {max_errors}; "
            f"each is in {summary.rejects_file} with its line number and reason")
