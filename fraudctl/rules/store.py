"""Where rules live: PostgreSQL (the stack's, database `postgres.rules_db`), with their history.

Two tables. `rules`: the current set, one row per rule. `rule_changes`: one row per change, numbered by the
set's version (1, 2, 3, ... for the whole set, never reused), with who (the OS user or --author), when, what
(add, replace, enable, shadow, disable, pause, remove), a detail and the rule as it was after the change, so
any past version is the fold of the changes up to it (fraudctl.rules.history). A change takes a lock on the
changes table for its transaction: versions are handed out and committed in one order, so a reader that saw
version N has seen every change up to N.

The scorer asks `version()` between batches (one indexed max(), well under a millisecond) and reads the
set only when it moved. `MemoryRuleStore` is the same logic without a server, for tests.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from contextlib import contextmanager
from typing import Iterator

from fraudctl.errors import NotFoundError, UnavailableError
from fraudctl.rules import history as h
from fraudctl.rules.ruleset import ACTIVE, DISABLED, MODES, Rule, RuleSet

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_changes (
    version     bigint PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    author      text NOT NULL,
    rule        text NOT NULL,
    what        text NOT NULL,
    detail      text NOT NULL,
    after       jsonb
);
CREATE TABLE IF NOT EXISTS rules (
    name        text PRIMARY KEY,
    rule        jsonb NOT NULL,
    version     bigint NOT NULL REFERENCES rule_changes (version)
);
"""


class RuleStore:
    """The operations, once; a subclass gives `_transaction` (a locked unit of work) and the reads."""

    def version(self) -> int:
        raise NotImplementedError

    def changes(self, upto: int | None = None, rule: str | None = None) -> list[h.Change]:
        raise NotImplementedError

    @contextmanager
    def _transaction(self) -> Iterator["_Work"]:
        raise NotImplementedError
        yield  # pragma: no cover

    def current(self) -> RuleSet:
        return h.fold(self.changes())

    def at(self, version: int) -> RuleSet:
        latest = self.version()
        if version > latest:
            raise NotFoundError(f"rule set version {version} does not exist (the latest is {latest})")
        return h.fold(self.changes(upto=version), version)

    def get(self, name: str) -> Rule:
        found = {rule.name: rule for rule in self.current().rules}.get(name)
        if found is None:
            raise NotFoundError(f"no rule named {name!r}", hint="fraudctl rules list")
        return found

    def add(self, rules: list[Rule], *, author: str, replace_existing: bool = False) -> list[h.Change]:
        """Add (or with `replace_existing`, replace) rules in one transaction: all or none. A rule already
        there as given is no change."""
        with self._transaction() as work:
            for rule in rules:
                plan = h.plan_add(work.current, rule, replace_existing=replace_existing)
                if plan is not None:
                    work.write(author, rule.name, *plan, lambda version, rule=rule: h.new_rule(rule, version))
            return work.done

    def set_mode(self, name: str, mode: str, *, author: str) -> list[h.Change]:
        assert mode in MODES
        with self._transaction() as work:
            plan = h.plan_mode(work.current, name, mode)
            if plan is not None:
                work.write(author, name, *plan, lambda version: h.changed_rule(
                    work.current, name, version, mode=mode, paused=None))
            return work.done

    def pause(self, name: str, reason: str, *, rule_version: int, author: str = h.SCORER_AUTHOR) -> list[h.Change]:
        """Disable an active rule the scorer found over its cap; nothing if it changed since `rule_version`
        (a re-run batch, or an operator's newer change, wins)."""
        with self._transaction() as work:
            rule = work.current.get(name)
            if rule is not None and rule.mode == ACTIVE and rule.version == rule_version:
                work.write(author, name, h.PAUSE, reason, lambda version: h.changed_rule(
                    work.current, name, version, mode=DISABLED, paused=reason))
            return work.done

    def remove(self, name: str, *, author: str) -> list[h.Change]:
        with self._transaction() as work:
            if name not in work.current:
                raise NotFoundError(f"no rule named {name!r}", hint="fraudctl rules list")
            work.write(author, name, h.REMOVE, f"removed ({work.current[name].condition})", lambda version: None)
            return work.done


class _Work:
    """A unit of work: the current rules, and the changes written so far (numbered from `latest` + 1)."""

    def __init__(self, current: dict[str, Rule], latest: int, sink):
        self.current, self.latest, self.sink, self.done = current, latest, sink, []

    def write(self, author: str, name: str, what: str, detail: str, after_of) -> None:
        self.latest += 1
        after = after_of(self.latest)
        change = h.Change(self.latest, h.now(), author, name, what, detail, after)
        self.sink(change)
        if after is None:
            self.current.pop(name, None)
        else:
            self.current[name] = Rule(**after)
        self.done.append(change)


class MemoryRuleStore(RuleStore):
    def __init__(self):
        self._changes: list[h.Change] = []
        self._lock = threading.Lock()

    def version(self) -> int:
        return self._changes[-1].version if self._changes else 0

    def changes(self, upto: int | None = None, rule: str | None = None) -> list[h.Change]:
        return [c for c in self._changes if (upto is None or c.version <= upto) and (rule is None or c.rule == rule)]

    @contextmanager
    def _transaction(self) -> Iterator[_Work]:
        with self._lock:
            pending: list[h.Change] = []
            work = _Work({r.name: r for r in self.current().rules}, self.version(), pending.append)
            yield work
            self._changes.extend(pending)  # only when the block ran through: all or none


class PostgresRuleStore(RuleStore):
    """The stack's PostgreSQL: `pg` (host, port, user, rules_db) and the user's password."""

    def __init__(self, pg, password: str, *, timeout: int = 3):
        self.pg, self._password, self.timeout = pg, password, timeout
        self._conn = None
        self._ready = False
        self._lock = threading.RLock()

    def _connection(self):
        import psycopg2

        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(host=self.pg.host, port=self.pg.port, user=self.pg.user,
                                              password=self._password, dbname=self.pg.rules_db,
                                              connect_timeout=self.timeout, application_name="fraudctl-rules")
            except psycopg2.Error as exc:
                raise UnavailableError(f"the rule store (PostgreSQL {self.pg.host}:{self.pg.port}, database "
                                       f"{self.pg.rules_db}) cannot be reached: {str(exc).strip()}",
                                       hint="fraudctl up (it creates the database); fraudctl status") from None
            self._ready = False
        if not self._ready:
            with self._conn, self._conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(4242)")  # two first users: one creates the tables
                cur.execute(SCHEMA)
            self._ready = True
        return self._conn

    @contextmanager
    def _cursor(self):
        import psycopg2

        try:
            with self._lock:  # one connection, shared by the scorer's batch and refresh threads: one user at a time
                conn = self._connection()
                with conn, conn.cursor() as cur:
                    yield cur
        except psycopg2.Error as exc:
            if self._conn is not None:
                self._conn.close()
            raise UnavailableError(f"the rule store failed: {str(exc).strip()}") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def version(self) -> int:
        with self._cursor() as cur:
            cur.execute("SELECT coalesce(max(version), 0) FROM rule_changes")
            return int(cur.fetchone()[0])

    def changes(self, upto: int | None = None, rule: str | None = None) -> list[h.Change]:
        with self._cursor() as cur:
            cur.execute("SELECT version, at, author, rule, what, detail, after FROM rule_changes "
                        "WHERE (%s IS NULL OR version <= %s) AND (%s IS NULL OR rule = %s) ORDER BY version",
                        (upto, upto, rule, rule))
            return [h.Change(int(v), at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), author, name, what, detail, after)
                    for v, at, author, name, what, detail, after in cur.fetchall()]

    def current(self) -> RuleSet:
        with self._cursor() as cur:
            # One statement, one snapshot: the version and the rules it names (two statements could see a change
            # commit in between, and a set labelled N would hold N+1's rules: a re-run would then differ).
            cur.execute("SELECT coalesce((SELECT max(version) FROM rule_changes), 0), "
                        "(SELECT coalesce(json_agg(rule ORDER BY name), '[]'::json) FROM rules)")
            version, rows = cur.fetchone()
            return RuleSet(int(version), tuple(Rule(**row) for row in rows))

    @contextmanager
    def _transaction(self) -> Iterator[_Work]:
        with self._cursor() as cur:
            cur.execute("LOCK TABLE rule_changes IN SHARE ROW EXCLUSIVE MODE")  # one writer at a time
            cur.execute("SELECT coalesce(max(version), 0) FROM rule_changes")
            latest = int(cur.fetchone()[0])
            cur.execute("SELECT rule FROM rules")
            current = {row[0]["name"]: Rule(**row[0]) for row in cur.fetchall()}

            def sink(change: h.Change) -> None:
                cur.execute("INSERT INTO rule_changes (version, at, author, rule, what, detail, after) "
                            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                            (change.version, change.at, change.author, change.rule, change.what, change.detail,
                             h.to_json(change.after)))
                if change.after is None:
                    cur.execute("DELETE FROM rules WHERE name = %s", (change.rule,))
                else:
                    cur.execute("INSERT INTO rules (name, rule, version) VALUES (%s, %s, %s) ON CONFLICT (name) "
                                "DO UPDATE SET rule = EXCLUDED.rule, version = EXCLUDED.version",
                                (change.rule, json.dumps(change.after, sort_keys=True), change.version))
            yield _Work(current, latest, sink)

