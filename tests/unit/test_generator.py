"""The handbook simulator (fraudctl.data.generator) and `fraudctl generate`.

Expected rates are derived from the simulator's mechanics (Fraud Detection Handbook, chapter 3), not read off
its output, and the bands are several standard deviations wide for the reduced size used here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraudctl import contracts as c
from fraudctl.data import generator as g
from fraudctl.errors import BadInputError

# Small enough for a few seconds, large enough that ~180 customer and ~120 terminal compromises average out.
SIZE = dict(n_customers=1000, n_terminals=2000, n_days=60)
START = "2018-04-01"


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return g.generate_transactions(**SIZE, seed=7)


# --- what the mechanics predict -------------------------------------------------------------------------------

def _normal_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2))


# A time-of-day draw N(43200, 20000) lands inside [0, 86400) with this probability; the rest are discarded.
KEPT_TIME_SHARE = 1 - 2 * _normal_tail(g.TIME_OF_DAY_MEAN / g.TIME_OF_DAY_STD)
MEAN_TX_PER_DAY = g.MAX_MEAN_TX_PER_DAY / 2  # of U(0, 4)


def expected_rows(n_customers: int, n_days: int, **_: int) -> float:
    return n_customers * MEAN_TX_PER_DAY * n_days * KEPT_TIME_SHARE


def expected_amount_share() -> float:
    """P(amount > 220) with amount ~ N(m, m/2), m ~ U(5, 100); a negative redraw is below 200, so it never counts."""
    low, high = g.MEAN_AMOUNT_RANGE
    steps = 20_000
    total = 0.0
    for i in range(steps):
        mean = low + (high - low) * (i + 0.5) / steps
        total += _normal_tail((g.FRAUD_AMOUNT_THRESHOLD - mean) / (mean / 2))
    return total / steps


def expected_terminal_share(n_terminals: int, n_days: int, **_: int) -> float:
    """Share of terminal-days inside a compromise window; transactions spread evenly over days and terminals."""
    per_day = g.COMPROMISED_TERMINALS_PER_DAY / n_terminals
    compromised = [1 - (1 - per_day) ** min(day + 1, g.TERMINAL_COMPROMISE_DAYS) for day in range(n_days)]
    return sum(compromised) / n_days


def expected_customer_share(n_customers: int, n_days: int, **_: int) -> float:
    """int(n / 3) of the 3 customers' window transactions per day; the floor loses 1/3 on average."""
    per_customer_day = MEAN_TX_PER_DAY * KEPT_TIME_SHARE
    frauds = 0.0
    for day in range(n_days):
        window_days = min(g.CUSTOMER_COMPROMISE_DAYS, n_days - day)
        window_transactions = g.COMPROMISED_CUSTOMERS_PER_DAY * per_customer_day * window_days
        frauds += window_transactions / g.CUSTOMER_FRAUD_SHARE_DIVISOR - 1 / 3
    return frauds / (n_customers * per_customer_day * n_days)


def test_expectations_match_the_handbook_at_default_size() -> None:
    # Guards the derivations above: the book reports 1 754 155 rows and 0.84 % fraud for its defaults.
    default = dict(n_customers=5000, n_terminals=10000, n_days=183)
    rate = expected_amount_share() + expected_terminal_share(**default) + expected_customer_share(**default)
    assert expected_rows(**default) == pytest.approx(1_754_155, rel=0.02)
    assert rate == pytest.approx(0.0084, rel=0.05)


# --- shape of the output ------------------------------------------------------------------------------------

def test_columns_and_types(frame: pd.DataFrame) -> None:
    assert tuple(frame.columns) == c.GENERATED_COLUMNS
    assert frame[c.TRANSACTION_ID].dtype == np.int64
    assert pd.api.types.is_datetime64_dtype(frame[c.TX_DATETIME])  # naive, meaning UTC
    for column in (c.CUSTOMER_ID, c.TERMINAL_ID, c.IS_FRAUD, c.FRAUD_SCENARIO):
        assert pd.api.types.is_integer_dtype(frame[column])
    assert set(np.unique(frame[c.IS_FRAUD])) <= {0, 1}
    assert set(np.unique(frame[c.FRAUD_SCENARIO])) == {0, 1, 2, 3}
    assert frame[c.CUSTOMER_ID].between(0, SIZE["n_customers"] - 1).all()
    assert frame[c.TERMINAL_ID].between(0, SIZE["n_terminals"] - 1).all()
    cents = frame[c.AMOUNT].to_numpy() * 100
    assert np.allclose(cents, np.round(cents), atol=1e-6)
    assert (frame[c.AMOUNT] >= 0).all()


def test_transaction_ids_unique_and_in_time_order(frame: pd.DataFrame) -> None:
    assert np.array_equal(frame[c.TRANSACTION_ID].to_numpy(), np.arange(len(frame)))
    assert frame[c.TX_DATETIME].is_monotonic_increasing


def test_times_fall_inside_the_simulated_days(frame: pd.DataFrame) -> None:
    start = pd.Timestamp(START)
    assert frame[c.TX_DATETIME].min() >= start
    assert frame[c.TX_DATETIME].max() < start + pd.Timedelta(days=SIZE["n_days"])
    seconds_of_day = (frame[c.TX_DATETIME] - frame[c.TX_DATETIME].dt.normalize()).dt.total_seconds()
    # N(43200, 20000) cut at +-2.16 sd keeps its mean and shrinks its sd to 0.91 of it.
    z = g.TIME_OF_DAY_MEAN / g.TIME_OF_DAY_STD
    density = math.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    truncated_std = g.TIME_OF_DAY_STD * math.sqrt(1 - 2 * z * density / KEPT_TIME_SHARE)
    assert seconds_of_day.mean() == pytest.approx(g.TIME_OF_DAY_MEAN, rel=0.01)
    assert seconds_of_day.std() == pytest.approx(truncated_std, rel=0.02)


def test_row_count_follows_the_poisson_rates(frame: pd.DataFrame) -> None:
    # Mean of 1000 U(0, 4) rates has a 1.8 % sd.
    assert len(frame) == pytest.approx(expected_rows(**SIZE), rel=0.08)


def test_start_date_moves_the_calendar_only() -> None:
    small = dict(n_customers=50, n_terminals=100, n_days=3, seed=1)
    april = g.generate_transactions(**small)
    june = g.generate_transactions(**small, start_date="2018-06-01")
    shift = pd.Timestamp("2018-06-01") - pd.Timestamp("2018-04-01")
    assert (june[c.TX_DATETIME] - april[c.TX_DATETIME] == shift).all()
    assert june.drop(columns=c.TX_DATETIME).equals(april.drop(columns=c.TX_DATETIME))


# --- fraud rates --------------------------------------------------------------------------------------------

def test_fraud_rate_and_scenario_shares_in_the_expected_band(frame: pd.DataFrame) -> None:
    rows = len(frame)
    counts = np.bincount(frame[c.FRAUD_SCENARIO], minlength=4)
    terminal_share = expected_terminal_share(**SIZE)
    customer_share = expected_customer_share(**SIZE)
    # Later scenarios overwrite earlier ones: scenario 1 loses the rows 2 and 3 take, scenario 2 those 3 takes.
    amount_share = expected_amount_share() * (1 - terminal_share - customer_share)
    terminal_share_kept = terminal_share * (1 - customer_share)
    # ~65 scenario-1 rows from the few customers with a mean near 100: wide band. ~120 terminal and ~180
    # customer compromises: their volumes vary by ~5 %, so +-25 % is over 4 sd.
    assert counts[1] / rows == pytest.approx(amount_share, rel=0.5)
    assert counts[2] / rows == pytest.approx(terminal_share_kept, rel=0.25)
    assert counts[3] / rows == pytest.approx(customer_share, rel=0.25)
    fraud_rate = frame[c.IS_FRAUD].mean()
    assert fraud_rate == pytest.approx(amount_share + terminal_share_kept + customer_share, rel=0.2)
    assert (frame[c.IS_FRAUD] == (frame[c.FRAUD_SCENARIO] > 0)).all()


def test_amount_rule(frame: pd.DataFrame) -> None:
    over = frame[c.AMOUNT] > g.FRAUD_AMOUNT_THRESHOLD
    assert over.any()
    assert (frame.loc[over, c.IS_FRAUD] == 1).all()
    scenario_1 = frame[c.FRAUD_SCENARIO] == g.SCENARIO_AMOUNT
    assert (frame.loc[scenario_1, c.AMOUNT] > g.FRAUD_AMOUNT_THRESHOLD).all()


class RecordingRng:
    """A Generator that remembers what every choice() returned, to check the windows built from them."""

    def __init__(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self.choices: list[tuple[object, np.ndarray]] = []

    def choice(self, population, *args, **kwargs):
        picked = self._rng.choice(population, *args, **kwargs)
        self.choices.append((population, np.asarray(picked)))
        return picked

    def __getattr__(self, name: str):
        return getattr(self._rng, name)


@pytest.fixture(scope="module")
def legit() -> tuple[g.Transactions, int]:
    """Transactions before any fraud, built from the generator's own steps."""
    n_customers, n_terminals, n_days = SIZE["n_customers"], SIZE["n_terminals"], SIZE["n_days"]
    rng = np.random.default_rng(3)
    customers = g.simulate_customer_profiles(n_customers, rng)
    reach = g.terminals_within_radius(customers, rng.uniform(0, 100, size=(n_terminals, 2)), 5.0)
    return g.simulate_transactions(customers, reach, n_days, rng), n_days


def _copy(tx: g.Transactions) -> g.Transactions:
    return g.Transactions(**{name: value.copy() for name, value in vars(tx).items()})


def test_compromised_terminal_windows_are_28_days(legit) -> None:
    tx, n_days = _copy(legit[0]), legit[1]
    rng = RecordingRng(11)
    g.add_compromised_terminal_frauds(tx, SIZE["n_terminals"], n_days, rng)
    assert len(rng.choices) == n_days
    expected = np.zeros(len(tx), dtype=bool)
    for day, (_, terminals) in enumerate(rng.choices):
        assert len(set(terminals.tolist())) == g.COMPROMISED_TERMINALS_PER_DAY
        for terminal in terminals:
            window = (tx.terminal_id == terminal) & (tx.day >= day) & (tx.day < day + g.TERMINAL_COMPROMISE_DAYS)
            expected |= window
    assert expected.any()
    assert np.array_equal(tx.fraud_scenario == g.SCENARIO_TERMINAL, expected)
    assert np.array_equal(tx.is_fraud == 1, expected)
    # A terminal compromised once on day d has frauds on days d..d+27 only.
    compromise_days: dict[int, list[int]] = {}
    for day, (_, terminals) in enumerate(rng.choices):
        for terminal in terminals.tolist():
            compromise_days.setdefault(terminal, []).append(day)
    for terminal, days in compromise_days.items():
        fraud_days = tx.day[(tx.terminal_id == terminal) & expected]
        if len(days) == 1 and len(fraud_days):
            assert fraud_days.min() >= days[0]
            assert fraud_days.max() - days[0] < g.TERMINAL_COMPROMISE_DAYS


def test_compromised_customer_windows_are_14_days_and_amounts_times_5(legit) -> None:
    tx, n_days = _copy(legit[0]), legit[1]
    amounts_before = tx.amount.copy()
    rng = RecordingRng(13)
    g.add_compromised_customer_frauds(tx, SIZE["n_customers"], n_days, rng)
    times_picked = np.zeros(len(tx), dtype=np.int64)
    day = -1
    compromised = np.empty(0)
    for population, picked in rng.choices:
        if np.ndim(population) == 0:  # the day's customers
            day += 1
            compromised = picked
            assert len(set(picked.tolist())) == g.COMPROMISED_CUSTOMERS_PER_DAY
            window = (np.isin(tx.customer_id, compromised) & (tx.day >= day)
                      & (tx.day < day + g.CUSTOMER_COMPROMISE_DAYS))
            expected_picks = int(window.sum()) // g.CUSTOMER_FRAUD_SHARE_DIVISOR
        else:  # rows picked among the window
            assert len(picked) == expected_picks
            assert len(set(picked.tolist())) == len(picked)
            assert np.isin(tx.customer_id[picked], compromised).all()
            assert ((tx.day[picked] >= day) & (tx.day[picked] < day + g.CUSTOMER_COMPROMISE_DAYS)).all()
            times_picked[picked] += 1
    assert day == n_days - 1
    fraud = tx.fraud_scenario == g.SCENARIO_CUSTOMER
    assert np.array_equal(fraud, times_picked > 0)
    assert np.array_equal(tx.is_fraud == 1, fraud)
    picked_once = times_picked == 1
    assert picked_once.sum() > 0.95 * fraud.sum()
    assert np.allclose(tx.amount[picked_once], amounts_before[picked_once] * 5, atol=0.005)
    # As in the book, a row inside two windows of the same customer is multiplied by 5 each time.
    picked_more = times_picked > 1
    assert np.allclose(tx.amount[picked_more], amounts_before[picked_more] * 5.0 ** times_picked[picked_more],
                       atol=0.01)
    assert np.array_equal(tx.amount[~fraud], amounts_before[~fraud])


def test_customers_use_only_terminals_within_the_radius() -> None:
    rng = np.random.default_rng(5)
    customers = g.simulate_customer_profiles(200, rng)
    # Sparse terminals and a small radius: some customers have none within reach.
    terminal_xy = rng.uniform(0, 100, size=(150, 2))
    reach = g.terminals_within_radius(customers, terminal_xy, 4.0)
    tx = g.simulate_transactions(customers, reach, 20, rng)
    distance = np.hypot(customers.x[tx.customer_id] - terminal_xy[tx.terminal_id, 0],
                        customers.y[tx.customer_id] - terminal_xy[tx.terminal_id, 1])
    assert (distance < 4.0).all()
    stranded = np.flatnonzero(reach.counts == 0)
    assert len(stranded) > 0
    assert not np.isin(tx.customer_id, stranded).any()
    all_distances = np.hypot(customers.x[:, None] - terminal_xy[None, :, 0],
                             customers.y[:, None] - terminal_xy[None, :, 1])
    assert np.array_equal(reach.counts, (all_distances < 4.0).sum(axis=1))


# --- determinism and files ----------------------------------------------------------------------------------

SMALL = dict(n_customers=300, n_terminals=600, n_days=20)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, suffix: str) -> None:
    paths = []
    for name, seed in (("a", 42), ("b", 42), ("c", 43)):
        path = tmp_path / f"{name}.{suffix}"
        g.write_transactions(g.generate_transactions(**SMALL, seed=seed), path)
        paths.append(path)
    first, again, other = (path.read_bytes() for path in paths)
    assert first == again
    assert first != other


def test_csv_layout_and_round_trip(tmp_path: Path) -> None:
    frame = g.generate_transactions(**SMALL, seed=1)
    path = tmp_path / "deep" / "down" / "tx.csv"
    assert g.write_transactions(frame, path) == "csv"
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(c.GENERATED_COLUMNS)
    first = lines[1].split(",")
    assert first[1].endswith("Z") and "T" in first[1]
    assert len(first[4].split(".")[1]) == 2  # cents always printed
    back = pd.read_csv(path)
    assert len(back) == len(frame)
    assert np.array_equal(back[c.AMOUNT].to_numpy(), frame[c.AMOUNT].to_numpy())
    parsed = pd.to_datetime(back[c.TX_DATETIME], utc=True).dt.tz_localize(None)
    assert np.array_equal(parsed.to_numpy(), frame[c.TX_DATETIME].to_numpy())
    assert not list(path.parent.glob(".*.tmp"))


def test_parquet_round_trip(tmp_path: Path) -> None:
    frame = g.generate_transactions(**SMALL, seed=1)
    path = tmp_path / "tx.parquet"
    assert g.write_transactions(frame, path) == "parquet"
    back = pd.read_parquet(path)
    assert tuple(back.columns) == c.GENERATED_COLUMNS
    assert str(back[c.TX_DATETIME].dt.tz) == "UTC"
    assert np.array_equal(back[c.TX_DATETIME].dt.tz_localize(None).astype("datetime64[ns]").to_numpy(),
                          frame[c.TX_DATETIME].to_numpy())
    for column in c.GENERATED_COLUMNS:
        if column != c.TX_DATETIME:
            assert np.array_equal(back[column].to_numpy(), frame[column].to_numpy()), column


def test_format_from_option_or_extension(tmp_path: Path) -> None:
    frame = g.generate_transactions(n_customers=20, n_terminals=40, n_days=2)
    assert g.write_transactions(frame, tmp_path / "noext", "parquet") == "parquet"
    with pytest.raises(BadInputError, match="cannot tell the format"):
        g.write_transactions(frame, tmp_path / "tx.txt")
    with pytest.raises(BadInputError, match="does not match"):
        g.write_transactions(frame, tmp_path / "tx.csv", "parquet")
    with pytest.raises(BadInputError, match="unknown format"):
        g.write_transactions(frame, tmp_path / "tx.csv", "xlsx")


@pytest.mark.parametrize("arguments, message", [
    (dict(n_customers=0), "number of customers"),
    (dict(n_terminals=-3), "number of terminals"),
    (dict(n_days=0), "number of days"),
    (dict(n_days=2.5), "number of days"),
    (dict(seed=-1), "seed"),
    (dict(radius=0.0), "radius"),
    (dict(start_date="2018-02-30"), "not a date"),
    (dict(start_date="yesterday"), "YYYY-MM-DD"),
])
def test_bad_arguments_are_named(arguments: dict, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        g.generate_transactions(**{"n_customers": 10, "n_terminals": 10, "n_days": 1, **arguments})


def test_progress_reaches_its_total() -> None:
    reports: list[tuple[int, int]] = []
    g.generate_transactions(n_customers=30, n_terminals=50, n_days=4, on_progress=lambda d, t: reports.append((d, t)))
    assert reports[-1][0] == reports[-1][1]
    assert [done for done, _ in reports] == list(range(1, len(reports) + 1))


# --- the command --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cli_app():
    from fraudctl.cli import app, generate

    # Until the root module registers the command itself.
    if not any(command.name == "generate" for command in app.registered_commands):
        generate.register(app)
    return app


def _invoke(app, args: list[str]):
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args)


def test_cli_writes_the_file_and_a_json_summary(cli_app, tmp_path: Path) -> None:
    out = tmp_path / "sub" / "tx.parquet"
    result = _invoke(cli_app, ["generate", "--customers", "100", "--terminals", "200", "--days", "10",
                               "--seed", "3", "--out", str(out), "--output", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["path"] == str(out) and summary["format"] == "parquet"
    written = pd.read_parquet(out)
    assert summary["rows"] == len(written)
    assert summary["frauds"] == int(written[c.IS_FRAUD].sum())
    assert summary["fraud_rate"] == pytest.approx(written[c.IS_FRAUD].mean())
    assert sum(summary["scenarios"].values()) == len(written)
    assert summary["seconds"] >= 0


def test_cli_text_summary_and_default_path(cli_app, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = _invoke(cli_app, ["generate", "--customers", "50", "--terminals", "80", "--days", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "data" / "transactions.csv").is_file()
    assert "transactions to data/transactions.csv" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--customers", "0"], "--customers"),
    (["--start-date", "2018-13-01"], "not a date"),
    (["--format", "parquet", "--out", "x.csv"], "does not match"),
    (["--out", "x.txt"], "cannot tell the format"),
])
def test_cli_bad_arguments_fail_with_a_clear_message(cli_app, tmp_path: Path, monkeypatch, args, message) -> None:
    monkeypatch.chdir(tmp_path)
    result = _invoke(cli_app, ["generate", "--days", "1", *args])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "data").exists()


def test_cli_defaults_are_the_generators() -> None:
    import inspect

    from fraudctl.cli.generate import generate

    defaults = {name: p.default for name, p in inspect.signature(generate).parameters.items()}
    assert (defaults["customers"], defaults["terminals"], defaults["days"], defaults["start_date"],
            defaults["seed"]) == (g.DEFAULT_CUSTOMERS, g.DEFAULT_TERMINALS, g.DEFAULT_DAYS, g.DEFAULT_START_DATE,
                                  g.DEFAULT_SEED)
