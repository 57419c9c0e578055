"""The transaction simulator of the Fraud Detection Handbook (Le Borgne et al., chapter 3), vectorised.

Reference: Le Borgne, Siblini, Lebichot, Bontempi, "Reproducible Machine Learning for Credit Card Fraud
Detection - Practical Handbook", section 3.2 "Transaction data simulator". Following its mechanics keeps
our model results comparable with the book's tables:

- customers sit at (x, y) ~ U(0, 100)^2 with mean_amount ~ U(5, 100), std_amount = mean_amount / 2 and
  mean_nb_tx_per_day ~ U(0, 4); terminals sit uniformly in the same square; a customer uses the terminals
  strictly closer than `radius` (Euclidean);
- each customer makes Poisson(mean_nb_tx_per_day) transactions a day; the second of the day is
  N(43200, 20000), floored, and a draw outside [0, 86400) is discarded, not redrawn (so about 3 % of the
  draws vanish, as in the book); the amount is N(mean_amount, std_amount), a negative draw replaced by
  U(0, 2 * mean_amount), rounded to cents; the terminal is uniform among the usable ones, and a customer
  with none makes no transactions;
- fraud, applied in this order, a later scenario overwriting `fraud_scenario`:
  1. every amount above 220 is fraud;
  2. each day d, 2 random terminals are compromised: all their transactions in days [d, d + 28) are fraud;
  3. each day d, 3 random customers are compromised: of their transactions in days [d, d + 14), a random
     int(n / 3) get their amount multiplied by 5 and are fraud.

Deliberate differences from the book's code, none of which moves the rates measurably:
- the book loops scenarios 2 and 3 over `range(max_day)` and so never compromises anything on the last
  day; here every simulated day compromises;
- the book reseeds per customer and per day; here one `numpy.random.default_rng(seed)` is split into
  independent streams (profiles, terminals, transactions, scenario 2, scenario 3), so the same seed gives
  the same rows, and changing `n_days` leaves the customer and terminal maps as they were.

Like the book, a transaction picked by two overlapping scenario-3 windows (its customer compromised twice
within 14 days, a handful of cases per default run) is multiplied by 5 twice.

Output (`fraudctl.contracts.GENERATED_COLUMNS`): transaction_id 0..N-1 in time order, tx_datetime naive
UTC, customer_id, terminal_id, amount, is_fraud (0/1), fraud_scenario (0 = legitimate, 1..3).
File formats (`write_transactions`):
- CSV: header row, no quoting, tx_datetime as ISO-8601 UTC seconds (`2018-04-01T00:07:56Z`, the
  transaction event's encoding), amount always with two decimals;
- parquet: tx_datetime as timestamp[us, UTC] (microseconds, because Spark cannot read nanosecond parquet
  timestamps), zstd compressed.
Both are byte-identical for the same arguments and library versions.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from fraudctl import contracts as c
from fraudctl.choices import FILE_FORMATS
from fraudctl.data.layout import resolve_format as layout_resolve_format
from fraudctl.errors import BadInputError

if TYPE_CHECKING:
    import pandas as pd

ProgressCallback = Callable[[int, int], None]  # (units done, units in total)

SECONDS_PER_DAY = 86_400
AREA_SIDE = 100.0  # customers and terminals live in [0, 100)^2
MEAN_AMOUNT_RANGE = (5.0, 100.0)
MAX_MEAN_TX_PER_DAY = 4.0
TIME_OF_DAY_MEAN = SECONDS_PER_DAY / 2
TIME_OF_DAY_STD = 20_000.0

SCENARIO_LEGIT = 0
SCENARIO_AMOUNT = 1
SCENARIO_TERMINAL = 2
SCENARIO_CUSTOMER = 3
FRAUD_AMOUNT_THRESHOLD = 220.0
COMPROMISED_TERMINALS_PER_DAY = 2
TERMINAL_COMPROMISE_DAYS = 28
COMPROMISED_CUSTOMERS_PER_DAY = 3
CUSTOMER_COMPROMISE_DAYS = 14
CUSTOMER_FRAUD_SHARE_DIVISOR = 3  # int(n / 3) of a compromised customer's window is fraudulent
CUSTOMER_FRAUD_AMOUNT_FACTOR = 5

DEFAULT_OUT = Path("data") / "transactions"  # .csv or .parquet

# The handbook's run: about 1.75 M transactions over half a year, 0.84 % of them fraud.
DEFAULT_CUSTOMERS = 5000
DEFAULT_TERMINALS = 10000
DEFAULT_DAYS = 183
DEFAULT_START_DATE = "2018-04-01"
DEFAULT_SEED = 0
CSV_DATETIME_UNIT = "s"
WRITE_CHUNK_ROWS = 250_000  # progress granularity when writing; the bytes do not depend on it

DISTANCE_BLOCK_PAIRS = 4_000_000  # customer-terminal pairs per block: about 32 MB of float64


@dataclass(frozen=True)
class CustomerProfiles:
    x: np.ndarray
    y: np.ndarray
    mean_amount: np.ndarray
    std_amount: np.ndarray
    mean_nb_tx_per_day: np.ndarray


@dataclass(frozen=True)
class Reach:
    """Each customer's usable terminals in CSR form: customer i uses terminal_ids[offsets[i]:offsets[i+1]]."""

    offsets: np.ndarray
    terminal_ids: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass
class Transactions:
    """Column arrays in time order (row index == transaction_id)."""

    seconds: np.ndarray  # since start_date 00:00:00 UTC
    day: np.ndarray
    customer_id: np.ndarray
    terminal_id: np.ndarray
    amount: np.ndarray
    is_fraud: np.ndarray
    fraud_scenario: np.ndarray

    def __len__(self) -> int:
        return len(self.seconds)


def generate_transactions(
    *,
    n_customers: int = DEFAULT_CUSTOMERS,
    n_terminals: int = DEFAULT_TERMINALS,
    n_days: int = DEFAULT_DAYS,
    start_date: str | dt.date = DEFAULT_START_DATE,
    seed: int = DEFAULT_SEED,
    radius: float = 5.0,
    on_progress: ProgressCallback | None = None,
) -> "pd.DataFrame":
    """Simulate `n_days` of transactions with fraud labels; columns as `fraudctl.contracts.GENERATED_COLUMNS`.

    Raises BadInputError for a non-positive count or radius, a negative seed or an unparseable date.
    """
    start = parse_start_date(start_date)
    _check_arguments(n_customers=n_customers, n_terminals=n_terminals, n_days=n_days, seed=seed, radius=radius)
    report = on_progress or (lambda done, total: None)
    # Progress units: each distance block, the transaction draw, each scenario day, the frame.
    total_steps = _distance_block_count(n_customers, n_terminals) + 1 + 2 * n_days + 1
    steps = 0

    def step() -> None:
        nonlocal steps
        steps += 1
        report(steps, total_steps)

    # Independent streams, so a change in one part (e.g. more days) does not reshuffle the others.
    customer_rng, terminal_rng, transaction_rng, terminal_fraud_rng, customer_fraud_rng = (
        np.random.default_rng(seed).spawn(5)
    )
    customers = simulate_customer_profiles(n_customers, customer_rng)
    terminal_xy = terminal_rng.uniform(0.0, AREA_SIDE, size=(n_terminals, 2))
    reach = terminals_within_radius(customers, terminal_xy, radius, on_block=step)
    transactions = simulate_transactions(customers, reach, n_days, transaction_rng)
    step()
    add_amount_frauds(transactions)
    add_compromised_terminal_frauds(transactions, n_terminals, n_days, terminal_fraud_rng, on_day=step)
    add_compromised_customer_frauds(transactions, n_customers, n_days, customer_fraud_rng, on_day=step)
    frame = to_frame(transactions, start)
    step()
    return frame


def parse_start_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise BadInputError(f"start date {value!r} is not a date; expected YYYY-MM-DD, e.g. 2018-04-01") from None


def _check_arguments(*, n_customers: int, n_terminals: int, n_days: int, seed: int, radius: float) -> None:
    for name, value in (("number of customers", n_customers), ("number of terminals", n_terminals),
                        ("number of days", n_days)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise BadInputError(f"{name} must be a whole number of at least 1, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise BadInputError(f"seed must be a whole number of at least 0, got {seed!r}")
    if not (isinstance(radius, (int, float, np.number)) and np.isfinite(radius) and radius > 0):
        raise BadInputError(f"radius must be a positive number, got {radius!r}")


def simulate_customer_profiles(n_customers: int, rng: np.random.Generator) -> CustomerProfiles:
    xy = rng.uniform(0.0, AREA_SIDE, size=(n_customers, 2))
    mean_amount = rng.uniform(*MEAN_AMOUNT_RANGE, size=n_customers)
    mean_nb_tx_per_day = rng.uniform(0.0, MAX_MEAN_TX_PER_DAY, size=n_customers)
    return CustomerProfiles(x=xy[:, 0], y=xy[:, 1], mean_amount=mean_amount, std_amount=mean_amount / 2,
                            mean_nb_tx_per_day=mean_nb_tx_per_day)


def _distance_block_size(n_terminals: int) -> int:
    return max(1, DISTANCE_BLOCK_PAIRS // max(n_terminals, 1))


def _distance_block_count(n_customers: int, n_terminals: int) -> int:
    return -(-n_customers // _distance_block_size(n_terminals))


def terminals_within_radius(customers: CustomerProfiles, terminal_xy: np.ndarray, radius: float,
                            on_block: Callable[[], None] = lambda: None) -> Reach:
    """Brute-force distances, in blocks of customers so memory stays bounded whatever the sizes."""
    n_customers, n_terminals = len(customers.x), len(terminal_xy)
    block = _distance_block_size(n_terminals)
    terminal_x, terminal_y = terminal_xy[:, 0], terminal_xy[:, 1]
    counts = np.empty(n_customers, dtype=np.int64)
    reachable: list[np.ndarray] = []
    squared_radius = radius * radius
    for first in range(0, n_customers, block):
        last = min(first + block, n_customers)
        dx = customers.x[first:last, None] - terminal_x[None, :]
        dy = customers.y[first:last, None] - terminal_y[None, :]
        # Strictly inside, as the book's `dist < r`; comparing squares avoids a square root per pair.
        within = dx * dx + dy * dy < squared_radius
        counts[first:last] = within.sum(axis=1)
        reachable.append(np.nonzero(within)[1])  # row-major, so grouped by customer, terminals ascending
        on_block()
    offsets = np.zeros(n_customers + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    terminal_ids = np.concatenate(reachable) if reachable else np.empty(0, dtype=np.int64)
    return Reach(offsets=offsets, terminal_ids=terminal_ids.astype(np.int64, copy=False))


def simulate_transactions(customers: CustomerProfiles, reach: Reach, n_days: int,
                          rng: np.random.Generator) -> Transactions:
    n_customers = len(customers.x)
    draws_per_customer_day = rng.poisson(customers.mean_nb_tx_per_day[:, None], size=(n_customers, n_days))
    # Flattening row-major lists draws customer by customer, day by day: the tie order before the time sort.
    flat_draws = draws_per_customer_day.ravel()
    customer_of_draw = np.repeat(np.repeat(np.arange(n_customers, dtype=np.int64), n_days), flat_draws)
    day_of_draw = np.repeat(np.tile(np.arange(n_days, dtype=np.int64), n_customers), flat_draws)
    del draws_per_customer_day, flat_draws

    time_of_day = np.floor(rng.normal(TIME_OF_DAY_MEAN, TIME_OF_DAY_STD, size=len(customer_of_draw)))
    usable_terminal_counts = reach.counts
    kept = (time_of_day >= 0) & (time_of_day < SECONDS_PER_DAY) & (usable_terminal_counts[customer_of_draw] > 0)
    customer_id = customer_of_draw[kept]
    day = day_of_draw[kept]
    seconds = day * SECONDS_PER_DAY + time_of_day[kept].astype(np.int64)
    del customer_of_draw, day_of_draw, time_of_day, kept

    mean_amount = customers.mean_amount[customer_id]
    amount = rng.normal(mean_amount, customers.std_amount[customer_id])
    negative = amount < 0
    amount[negative] = rng.uniform(0.0, 2 * mean_amount[negative])
    amount = np.round(amount, 2)

    pick = rng.integers(0, usable_terminal_counts[customer_id])
    terminal_id = reach.terminal_ids[reach.offsets[customer_id] + pick]

    # Stable, so transactions in the same second keep the customer-then-day order above: reproducible ids.
    order = np.argsort(seconds, kind="stable")
    n = len(order)
    return Transactions(
        seconds=seconds[order], day=day[order], customer_id=customer_id[order], terminal_id=terminal_id[order],
        amount=amount[order], is_fraud=np.zeros(n, dtype=np.int8), fraud_scenario=np.zeros(n, dtype=np.int8),
    )


def add_amount_frauds(tx: Transactions) -> None:
    over = tx.amount > FRAUD_AMOUNT_THRESHOLD
    tx.is_fraud[over] = 1
    tx.fraud_scenario[over] = SCENARIO_AMOUNT


def add_compromised_terminal_frauds(tx: Transactions, n_terminals: int, n_days: int, rng: np.random.Generator,
                                    on_day: Callable[[], None] = lambda: None) -> None:
    rows_by_terminal_day, sorted_keys = _index_by(tx.terminal_id, tx.day, n_days)
    per_day = min(COMPROMISED_TERMINALS_PER_DAY, n_terminals)
    for day in range(n_days):
        for terminal in rng.choice(n_terminals, size=per_day, replace=False):
            rows = _rows_in_window(rows_by_terminal_day, sorted_keys, int(terminal), day,
                                   TERMINAL_COMPROMISE_DAYS, n_days)
            tx.is_fraud[rows] = 1
            tx.fraud_scenario[rows] = SCENARIO_TERMINAL
        on_day()


def add_compromised_customer_frauds(tx: Transactions, n_customers: int, n_days: int, rng: np.random.Generator,
                                    on_day: Callable[[], None] = lambda: None) -> None:
    rows_by_customer_day, sorted_keys = _index_by(tx.customer_id, tx.day, n_days)
    per_day = min(COMPROMISED_CUSTOMERS_PER_DAY, n_customers)
    for day in range(n_days):
        compromised = rng.choice(n_customers, size=per_day, replace=False)
        windows = [_rows_in_window(rows_by_customer_day, sorted_keys, int(customer), day,
                                   CUSTOMER_COMPROMISE_DAYS, n_days) for customer in compromised]
        # Sorted, so the random pick depends only on the seed, not on the order the customers came out.
        candidates = np.sort(np.concatenate(windows))
        n_frauds = len(candidates) // CUSTOMER_FRAUD_SHARE_DIVISOR
        if n_frauds:
            rows = rng.choice(candidates, size=n_frauds, replace=False)
            tx.amount[rows] = np.round(tx.amount[rows] * CUSTOMER_FRAUD_AMOUNT_FACTOR, 2)
            tx.is_fraud[rows] = 1
            tx.fraud_scenario[rows] = SCENARIO_CUSTOMER
        on_day()


def _index_by(entity: np.ndarray, day: np.ndarray, n_days: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by (entity, day) and their sorted keys, so a window of one entity is one searchsorted."""
    keys = entity.astype(np.int64) * n_days + day
    order = np.argsort(keys, kind="stable")
    return order, keys[order]


def _rows_in_window(order: np.ndarray, sorted_keys: np.ndarray, entity: int, first_day: int, length: int,
                    n_days: int) -> np.ndarray:
    low, high = np.searchsorted(sorted_keys, [entity * n_days + first_day,
                                              entity * n_days + min(first_day + length, n_days)])
    return order[low:high]


def to_frame(tx: Transactions, start: dt.date) -> "pd.DataFrame":
    import pandas as pd

    start_second = np.datetime64(start.isoformat(), "s")
    return pd.DataFrame({
        c.TRANSACTION_ID: np.arange(len(tx), dtype=np.int64),
        c.TX_DATETIME: (start_second + tx.seconds).astype("datetime64[ns]"),
        c.CUSTOMER_ID: tx.customer_id,
        c.TERMINAL_ID: tx.terminal_id,
        c.AMOUNT: tx.amount,
        c.IS_FRAUD: tx.is_fraud,
        c.FRAUD_SCENARIO: tx.fraud_scenario,
    }, columns=list(c.GENERATED_COLUMNS))


def summarize(df: "pd.DataFrame") -> dict[str, object]:
    """Rows, frauds, fraud rate and the count per scenario (0 = legitimate), for reports."""
    rows = len(df)
    frauds = int(df[c.IS_FRAUD].sum())
    per_scenario = np.bincount(df[c.FRAUD_SCENARIO].to_numpy(), minlength=SCENARIO_CUSTOMER + 1)
    return {
        "rows": rows,
        "frauds": frauds,
        "fraud_rate": frauds / rows if rows else 0.0,
        "scenarios": {str(i): int(n) for i, n in enumerate(per_scenario)},
    }


def output_path(out: Path | None, fmt: str | None) -> Path:
    """Where to write: `out`, else data/transactions with the extension of `fmt` (csv when none is given)."""
    return out if out is not None else DEFAULT_OUT.with_suffix(f".{fmt or FILE_FORMATS[0]}")  # csv


def resolve_format(path: Path, fmt: str | None) -> str:
    """The format to write `path` in (the rule is `fraudctl.data.layout.resolve_format`'s, for writing)."""
    return layout_resolve_format(path, fmt, writing=True)


def write_transactions(df: "pd.DataFrame", path: Path, fmt: str | None = None,
                       on_progress: ProgressCallback | None = None) -> str:
    """Write the generator's frame as CSV or parquet; returns the format used.

    The file appears whole or not at all (written beside, then renamed), so a reader never sees half of it.
    """
    path = Path(path)
    fmt = resolve_format(path, fmt)
    table = _to_arrow(df, fmt)
    # Not tempfile.mkstemp: its 0600 mode would stick to the renamed file, while open() respects the umask.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        sink_file = open(temporary, "wb")
    except OSError as exc:
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with sink_file as sink:
            if fmt == "csv":
                _write_csv(table, sink, on_progress)
            else:
                _write_parquet(table, sink, on_progress)
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise BadInputError(f"cannot write {path}: {exc.strerror or exc}") from exc
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return fmt


def _to_arrow(df: "pd.DataFrame", fmt: str):
    import pyarrow as pa

    missing = [name for name in c.GENERATED_COLUMNS if name not in df.columns]
    if missing:
        raise BadInputError(f"not a generator frame: missing column(s) {', '.join(missing)}")
    seconds = df[c.TX_DATETIME].to_numpy().astype("datetime64[s]")
    if fmt == "csv":
        # numpy and arrow format these in C, an order of magnitude faster than pandas' to_csv.
        tx_datetime = pa.array(np.datetime_as_string(seconds, unit=CSV_DATETIME_UNIT, timezone="UTC"))
        amount = pa.array(df[c.AMOUNT].to_numpy(), type=pa.float64()).cast(pa.decimal128(18, 2))
    else:
        tx_datetime = pa.array(seconds.astype("datetime64[us]"), type=pa.timestamp("us", tz="UTC"))
        amount = pa.array(df[c.AMOUNT].to_numpy(), type=pa.float64())
    columns = {
        c.TRANSACTION_ID: pa.array(df[c.TRANSACTION_ID].to_numpy(), type=pa.int64()),
        c.TX_DATETIME: tx_datetime,
        c.CUSTOMER_ID: pa.array(df[c.CUSTOMER_ID].to_numpy(), type=pa.int64()),
        c.TERMINAL_ID: pa.array(df[c.TERMINAL_ID].to_numpy(), type=pa.int64()),
        c.AMOUNT: amount,
        c.IS_FRAUD: pa.array(df[c.IS_FRAUD].to_numpy(), type=pa.int8()),
        c.FRAUD_SCENARIO: pa.array(df[c.FRAUD_SCENARIO].to_numpy(), type=pa.int8()),
    }
    return pa.table(columns)


def _chunks(n_rows: int) -> list[tuple[int, int]]:
    return [(first, min(WRITE_CHUNK_ROWS, n_rows - first)) for first in range(0, n_rows, WRITE_CHUNK_ROWS)]


def _write_csv(table, sink, on_progress: ProgressCallback | None) -> None:
    import pyarrow.csv as pa_csv

    sink.write((",".join(table.column_names) + "\n").encode())
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    for first, length in _chunks(table.num_rows):
        pa_csv.write_csv(table.slice(first, length), sink, options)
        if on_progress:
            on_progress(first + length, table.num_rows)


def _write_parquet(table, sink, on_progress: ProgressCallback | None) -> None:
    import pyarrow.parquet as pq

    with pq.ParquetWriter(sink, table.schema, compression="zstd") as writer:
        for first, length in _chunks(table.num_rows):
            writer.write_table(table.slice(first, length), row_group_size=WRITE_CHUNK_ROWS)
            if on_progress:
                on_progress(first + length, table.num_rows)
