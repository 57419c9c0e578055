"""The error hierarchy and the documented exit codes.

Every failure fraudctl knows about is a `FraudctlError` subclass carrying an `ExitCode`; the CLI's single
error boundary (`fraudctl.cli.main`) turns it into a red message on stderr and that exit code. The table
in README.md ("Exit codes") is generated from `ExitCode` and checked by a test.
"""

from __future__ import annotations

import enum


@enum.unique  # two names with one value would be an alias, silently skipped when iterating
class ExitCode(enum.IntEnum):
    """A documented exit code; `description` is its meaning, the README's table (fraudctl.reference) shows it."""

    description: str

    def __new__(cls, value: int, description: str) -> "ExitCode":
        member = int.__new__(cls, value)
        member._value_ = value
        member.description = description
        return member

    OK = 0, "success"
    ERROR = 1, "an unexpected failure (a bug); rerun with `--debug` for the traceback"
    USAGE = 2, ("bad command-line usage (unknown option, missing argument); also a confirmation that cannot be "
                "asked (no terminal on stdin, or `--output json`): pass `--yes`")
    CONFIG = 3, "`fraudctl.yaml` or a `FRAUDCTL_*` variable is invalid"
    PREREQUISITE = 4, "a required program (Java, Maven, PostgreSQL, Redis, Docker engine) is missing"
    PORT_IN_USE = 5, "a port the stack needs is taken by another program"
    SERVICE_FAILED = 6, "a service exited while starting, or a setup step failed"
    TIMEOUT = 7, "a wait ran past `--timeout`"
    UNAVAILABLE = 8, "a service is not running or cannot be reached"
    NOT_FOUND = 9, "the named thing (service, model version, file) does not exist"
    REFUSED = 10, "a safety gate refused the operation (e.g. the promotion gate); `--force` overrides"
    BAD_INPUT = 11, "input data had more errors than allowed (see the rejects file)"
    CONTRACT = 12, ("a model does not fit the feature contract (input signature or output), or cannot be loaded "
                    "safely (not skops, untrusted types)")
    SERVICE_ERROR = 13, "a service answered with an error (e.g. MLflow refused a request); the message quotes it"
    RUN_FAILED = 14, ("a pipeline run ended failed (e.g. `fraudctl retrain --wait`); `--logs` prints the failing "
                      "task's log")
    AUTH = 15, "a service refused fraudctl's credentials (e.g. the Airflow admin password)"
    INTERRUPTED = 130, "interrupted (Ctrl-C)"


class FraudctlError(Exception):
    """A failure with a message meant for the operator."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint  # what to do about it
        self.detail = detail  # e.g. the tail of a service log


class UsageError(FraudctlError):
    """The command cannot go on as invoked, e.g. it must ask for confirmation and cannot (say --yes)."""

    exit_code = ExitCode.USAGE


class ConfigError(FraudctlError):
    exit_code = ExitCode.CONFIG


class PrerequisiteError(FraudctlError):
    exit_code = ExitCode.PREREQUISITE


class PortInUseError(FraudctlError):
    exit_code = ExitCode.PORT_IN_USE


class ServiceFailedError(FraudctlError):
    exit_code = ExitCode.SERVICE_FAILED


class WaitTimeoutError(FraudctlError):
    exit_code = ExitCode.TIMEOUT


class ServiceError(FraudctlError):
    """A service answered, with an error: a refused or failed request (not a missing thing, not a timeout)."""

    exit_code = ExitCode.SERVICE_ERROR


class UnavailableError(FraudctlError):
    exit_code = ExitCode.UNAVAILABLE


class NotFoundError(FraudctlError):
    exit_code = ExitCode.NOT_FOUND


class RefusedError(FraudctlError):
    exit_code = ExitCode.REFUSED


class BadInputError(FraudctlError):
    exit_code = ExitCode.BAD_INPUT


class ContractError(FraudctlError):
    exit_code = ExitCode.CONTRACT


class RunFailedError(FraudctlError):
    exit_code = ExitCode.RUN_FAILED


class AuthError(FraudctlError):
    exit_code = ExitCode.AUTH
