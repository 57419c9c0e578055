"""Training and evaluation: load history, split it in time, fit an estimator, pick a threshold, measure.

The protocol is the Fraud Detection Handbook's (Le Borgne et al., chapters 3.4-3.5 and 5.2):

    |-- history (features look back) --|-- train --|-- delay --|-- test --|
                                          7 days      7 days     7 days

* Features are computed once over the whole history (they only look backwards, `fraudctl.features`).
* Train on the transactions of `train_days` days from `train_start`; skip `delay_days` days (their labels
  are not known yet when the model would go live); test on the next `test_days` days.
* On each test day X, cards (customers) with a confirmed fraud from `train_start` up to X - delay are left
  out: their labels arrived before X, so an investigator already knows them and a model finding them
  again earns nothing. This is the handbook's exclusion, so our numbers compare with its tables.
* The decision threshold is chosen on a validation slice, never on the test days: a second model is
  trained on the same protocol shifted back by delay + validation days, and scores the last
  `validation_days` days of the training window (the handbook's validation set, chapter 5.2). The
  threshold meets an alert budget (alerts per day) or a precision target there.
* Metrics: ROC AUC, average precision (over transactions), and card precision@100
  (`fraudctl.model.evaluation`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from fraudctl.contracts import AMOUNT, CUSTOMER_ID, IS_FRAUD, TRAINING_COLUMNS, TRANSACTION_ID, TX_DATETIME
from fraudctl.errors import BadInputError, NotFoundError, UnavailableError
from fraudctl.choices import DEFAULT_ESTIMATOR
from fraudctl.model.estimators import ESTIMATORS, hyperparameters, make_estimator
from fraudctl.model.evaluation import ThresholdChoice, choose_threshold, day_of, evaluate
from fraudctl.features import DEFAULT_SPEC, FeatureSpec, compute_features, validate_transactions
from fraudctl.data.lake import s3_filesystem
from fraudctl.data.layout import ColumnMapping, InputLayout, resolve_format

if TYPE_CHECKING:
    from fraudctl.config import ModelConfig, StorageConfig

LAKE_PARTITION_FIELDS = ("day", "date", "dt")  # a hive partition key by day, pruned when loading a window


# ------------------------------------------------------------------------------------------------ split


@dataclass(frozen=True)
class SplitSpec:
    """The time windows, in whole UTC days. End dates are exclusive."""

    train_start: dt.date
    train_days: int = 7
    delay_days: int = 7
    test_days: int = 7
    validation_days: int = 7

    def __post_init__(self) -> None:
        if self.train_days < 1 or self.test_days < 1:
            raise BadInputError(f"train and test need at least one day (train_days={self.train_days}, "
                                f"test_days={self.test_days})")
        if self.delay_days < 0 or self.validation_days < 0:
            raise BadInputError("delay_days and validation_days cannot be negative")
        if self.validation_days > self.train_days:
            raise BadInputError(f"validation_days ({self.validation_days}) cannot exceed train_days "
                                f"({self.train_days}): the validation slice is the end of the training window")

    @property
    def train_end(self) -> dt.date:
        return self.train_start + dt.timedelta(days=self.train_days)

    @property
    def test_start(self) -> dt.date:
        return self.train_end + dt.timedelta(days=self.delay_days)

    @property
    def test_end(self) -> dt.date:
        return self.test_start + dt.timedelta(days=self.test_days)

    def validation_split(self) -> "SplitSpec | None":
        """The same protocol shifted back so that its test days are the last validation days of training."""
        if self.validation_days == 0:
            return None
        return SplitSpec(
            train_start=self.train_start - dt.timedelta(days=self.delay_days + self.validation_days),
            train_days=self.train_days,
            delay_days=self.delay_days,
            test_days=self.validation_days,
            validation_days=0,
        )

    @property
    def first_day_needed(self) -> dt.date:
        validation = self.validation_split()
        return validation.train_start if validation else self.train_start

    def as_dict(self) -> dict[str, str | int]:
        validation = self.validation_split()
        data: dict[str, str | int] = {
            "train_start": self.train_start.isoformat(), "train_end": self.train_end.isoformat(),
            "delay_days": self.delay_days,
            "test_start": self.test_start.isoformat(), "test_end": self.test_end.isoformat(),
            "validation_days": self.validation_days,
        }
        if validation:
            data["validation_train_start"] = validation.train_start.isoformat()
            data["validation_start"] = validation.test_start.isoformat()
            data["validation_end"] = validation.test_end.isoformat()
        return data

    @classmethod
    def latest(cls, last_day: dt.date, *, train_days: int = 7, delay_days: int = 7, test_days: int = 7,
               validation_days: int = 7) -> "SplitSpec":
        """The most recent split whose test window ends with `last_day` (included)."""
        start = last_day + dt.timedelta(days=1 - test_days - delay_days - train_days)
        return cls(start, train_days, delay_days, test_days, validation_days)


def _ts(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day)


def split_train_test(featured: pd.DataFrame, split: SplitSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training rows and test rows (with the known compromised cards removed from each test day)."""
    times = featured[TX_DATETIME]
    train = featured[(times >= _ts(split.train_start)) & (times < _ts(split.train_end))]
    tests = []
    frauds = featured[(featured[IS_FRAUD] == 1) & (times >= _ts(split.train_start))]
    fraud_days = day_of(frauds)
    for offset in range(split.test_days):
        day = _ts(split.test_start + dt.timedelta(days=offset))
        rows = featured[(times >= day) & (times < day + pd.Timedelta(days=1))]
        # Labels of transactions before day - delay have arrived by the start of `day`.
        known = frauds.loc[fraud_days < day - pd.Timedelta(days=split.delay_days), CUSTOMER_ID].unique()
        tests.append(rows[~rows[CUSTOMER_ID].isin(known)])
    test = pd.concat(tests) if tests else featured.iloc[0:0]
    return train, test


# ------------------------------------------------------------------------------------------- training


@dataclass
class TrainingResult:
    model: Any
    estimator: str
    params: dict[str, Any]
    split: SplitSpec
    spec: FeatureSpec
    threshold: ThresholdChoice
    metrics: dict[str, Any]  # on the test days
    validation_metrics: dict[str, Any] | None
    train: pd.DataFrame  # featured training rows
    test: pd.DataFrame  # featured test rows, with a `score` column
    fit_seconds: float
    total_seconds: float
    warnings: list[str] = field(default_factory=list)

    @property
    def feature_names(self) -> list[str]:
        return self.spec.feature_names

    def summary(self) -> dict[str, Any]:
        return {
            "estimator": self.estimator,
            "window": self.split.as_dict(),
            "threshold": asdict(self.threshold),
            "metrics": {k: v for k, v in self.metrics.items() if not k.endswith("_daily")},
            "validation_metrics": ({k: v for k, v in self.validation_metrics.items() if not k.endswith("_daily")}
                                   if self.validation_metrics else None),
            "train_transactions": int(len(self.train)),
            "train_frauds": int(self.train[IS_FRAUD].sum()),
            "fit_seconds": round(self.fit_seconds, 3),
            "total_seconds": round(self.total_seconds, 3),
            "warnings": self.warnings,
        }


def prepare(transactions: pd.DataFrame, spec: FeatureSpec = DEFAULT_SPEC, *, source: str = "data") -> pd.DataFrame:
    """Validated transactions with the features, in time order (labels required)."""
    featured = compute_features(transactions, spec, source=source)
    labelled = featured[IS_FRAUD].notna()
    return featured[labelled].sort_values([TX_DATETIME, TRANSACTION_ID], kind="mergesort")


def _fit(estimator: str, rows: pd.DataFrame, spec: FeatureSpec, random_state: int, what: str):
    y = rows[IS_FRAUD].astype(int)
    if len(rows) == 0 or y.nunique() < 2:
        raise BadInputError(f"the {what} window has {len(rows)} transaction(s) and {int(y.sum())} fraud(s): "
                            f"it needs both classes", hint="widen the window or move it (--train-start)")
    model = make_estimator(estimator, random_state)
    model.fit(rows[spec.feature_names], y)
    return model


def fraud_scores(model, rows: pd.DataFrame, feature_names: list[str]) -> np.ndarray:
    if len(rows) == 0:
        return np.zeros(0)
    return model.predict_proba(rows[feature_names])[:, 1]


def train(featured: pd.DataFrame, split: SplitSpec, *, estimator: str = DEFAULT_ESTIMATOR,
          spec: FeatureSpec = DEFAULT_SPEC, alert_budget_per_day: int = 100, precision_target: float | None = None,
          random_state: int = 0) -> TrainingResult:
    """Fit on the training window, choose the threshold on validation, evaluate on the test window."""
    if estimator not in ESTIMATORS:
        raise BadInputError(f"unknown estimator {estimator!r}; choose one of {', '.join(ESTIMATORS)}")
    started = time.perf_counter()
    _check_coverage(featured, split)
    warnings: list[str] = []

    validation = split.validation_split()
    validation_metrics = None
    if validation is not None:
        v_train, v_test = split_train_test(featured, validation)
        v_model = _fit(estimator, v_train, spec, random_state, "validation-training")
        v_scores = fraud_scores(v_model, v_test, spec.feature_names)
        choice = choose_threshold(v_test, v_scores, alert_budget_per_day=alert_budget_per_day,
                                  precision_target=precision_target, chosen_on="validation")
        validation_metrics = evaluate(v_test, v_scores, choice.threshold)
    train_rows, test_rows = split_train_test(featured, split)
    fit_started = time.perf_counter()
    model = _fit(estimator, train_rows, spec, random_state, "training")
    fit_seconds = time.perf_counter() - fit_started
    if validation is None:
        choice = choose_threshold(train_rows, fraud_scores(model, train_rows, spec.feature_names),
                                  alert_budget_per_day=alert_budget_per_day, precision_target=precision_target,
                                  chosen_on="training")
        warnings.append("threshold chosen on the training window's own scores (validation_days=0): "
                        "expect more alerts than the budget on new data")
    if choice.note:
        warnings.append(choice.note)
    if len(test_rows) == 0:
        raise BadInputError(f"no transactions in the test window {split.test_start}..{split.test_end} "
                            f"(exclusive)", hint="move the window (--train-start) or shorten it")
    scores = fraud_scores(model, test_rows, spec.feature_names)
    metrics = evaluate(test_rows, scores, choice.threshold)
    if choice.policy == "alert_budget":
        warning = alert_budget_drift(metrics["alerts_per_day"], alert_budget_per_day, choice.chosen_on, validation,
                                     first_day=featured[TX_DATETIME].min().date(), history_days=spec.history_days)
        if warning:
            warnings.append(warning)
    test_rows = test_rows.assign(score=scores)
    return TrainingResult(
        model=model, estimator=estimator, params=hyperparameters(model), split=split, spec=spec,
        threshold=choice, metrics=metrics, validation_metrics=validation_metrics, train=train_rows,
        test=test_rows, fit_seconds=fit_seconds, total_seconds=time.perf_counter() - started, warnings=warnings,
    )


BUDGET_DRIFT_FACTOR = 3.0  # test alerts a day beyond budget x3 or under budget / 3: the threshold did not carry


def alert_budget_drift(alerts_per_day: float, budget: int, chosen_on: str, validation: SplitSpec | None, *,
                       first_day: dt.date, history_days: int) -> str | None:
    """A warning when the threshold picked for the alert budget gives a very different number of alerts on the
    test days (None when within a factor of BUDGET_DRIFT_FACTOR): the scorer would alert at that rate too.
    The usual cause is a validation model trained on the data's first days, whose features' windows
    (`history_days` of history) were still filling, so its scores are scaled unlike the final model's."""
    if budget / BUDGET_DRIFT_FACTOR <= alerts_per_day <= budget * BUDGET_DRIFT_FACTOR:
        return None
    message = (f"the threshold gives {alerts_per_day:,.0f} alerts a day on the test days against the budget of "
               f"{budget:,} it was chosen for (on the {chosen_on} scores)")
    if validation is not None and validation.train_start < first_day + dt.timedelta(days=history_days):
        return (message + f": the validation model trained from {validation.train_start}, less than {history_days} "
                f"days after the data's first day ({first_day}), while the features' windows were still filling; "
                f"a later --train-start (from {first_day + dt.timedelta(days=history_days)} on) avoids that")
    return message + ": the validation days behave unlike the test days; check the data or the window (--train-start)"


def _check_coverage(featured: pd.DataFrame, split: SplitSpec) -> None:
    """The data must reach back to the first day the split needs, and forward to its last test day."""
    if len(featured) == 0:
        raise BadInputError("no labelled transactions in the data")
    first = featured[TX_DATETIME].min().date()
    last = featured[TX_DATETIME].max().date()
    needed_from, needed_to = split.first_day_needed, split.test_end - dt.timedelta(days=1)
    if first > needed_from or last < needed_to:
        what = "validation, training" if split.validation_days else "training"
        raise BadInputError(
            f"the data covers {first}..{last} but the split ({what}, delay, test) needs {needed_from}..{needed_to}",
            hint="choose --train-start so the windows fit, shorten them, or use --validation-days 0",
        )


def default_split(featured_or_raw: pd.DataFrame, *, train_days: int = 7, delay_days: int = 7, test_days: int = 7,
                  validation_days: int = 7) -> SplitSpec:
    """The latest split whose test window ends on the last complete day of the data."""
    times = featured_or_raw[TX_DATETIME]
    if len(times) == 0:
        raise BadInputError("no transactions in the data")
    last = times.max()
    # The day of the last transaction counts as complete only if the data reaches its last hour (a lake
    # being filled right now ends in a partial day, which would make a thin test day).
    last_day = last.date() if last.hour == 23 else last.date() - dt.timedelta(days=1)
    return SplitSpec.latest(last_day, train_days=train_days, delay_days=delay_days, test_days=test_days,
                            validation_days=validation_days)


# ---------------------------------------------------------------------------------------------- loading


@dataclass
class LoadedData:
    frame: pd.DataFrame
    source: str
    kind: str  # "csv", "parquet", "lake"
    fingerprint: str  # sha256 of the file, or of the lake's file list with sizes
    files: int

    def lineage(self) -> dict[str, Any]:
        times = self.frame[TX_DATETIME]
        return {
            "source": self.source, "kind": self.kind, "fingerprint": self.fingerprint, "files": self.files,
            "rows": int(len(self.frame)),
            "first_tx": str(times.min()) if len(times) else None,
            "last_tx": str(times.max()) if len(times) else None,
        }


def load_transactions(source: str | Path, *, layout: InputLayout | None = None,
                      storage: "StorageConfig | None" = None, since: dt.date | None = None,
                      until: dt.date | None = None) -> LoadedData:
    """Read labelled transactions from a CSV or parquet file, or a lake directory (local or s3://).

    `layout` maps the source's columns onto the contract (default: recognised from the header);
    `since`/`until` (until exclusive) prune a lake to the days needed. Times come back as naive UTC.
    """
    text = str(source)
    layout = layout or InputLayout()
    if text.startswith("s3://"):
        frame, mapping, fingerprint, files = _read_lake(text, layout, storage, since, until)
        kind = "lake"
    else:
        path = Path(text)
        if not path.exists():
            raise NotFoundError(f"data not found: {path}")
        text = str(path.resolve())
        if path.is_dir():
            frame, mapping, fingerprint, files = _read_lake(text, layout, storage, since, until)
            kind = "lake"
        else:
            kind = resolve_format(path)
            frame = _read_file(path, kind)
            mapping = _resolve(list(frame.columns), layout, text)
            fingerprint, files = _sha256(path), 1
    frame = _to_contract(frame, mapping, text)
    if since is not None:
        frame = frame[frame[TX_DATETIME] >= _ts(since)]
    if until is not None:
        frame = frame[frame[TX_DATETIME] < _ts(until)]
    return LoadedData(frame.reset_index(drop=True), text, kind, fingerprint, files)


def _resolve(header: list[str], layout: InputLayout, source: str) -> ColumnMapping:
    try:
        mapping = layout.resolve(header)
    except BadInputError as exc:
        raise BadInputError(f"{source}: {exc.message}", hint=exc.hint) from None
    if not mapping.has_labels:
        raise BadInputError(f"{source}: no label column: training needs {IS_FRAUD} (0/1)",
                            hint=f"map it with --map COLUMN={IS_FRAUD}")
    return mapping


def _read_file(path: Path, kind: str) -> pd.DataFrame:
    try:
        if kind == "csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise BadInputError(f"{path}: cannot read as {kind}: {exc}") from None


def _to_contract(frame: pd.DataFrame, mapping: ColumnMapping, source: str) -> pd.DataFrame:
    """The contract's columns from the mapped source columns; errors name the file and the column.

    Values are parsed by replay's parsers (fraudctl.data.replay.parse), so a file means the same in both."""
    from fraudctl.data.replay.parse import as_label, as_number

    out = pd.DataFrame(index=frame.index)
    for name, column in mapping.fields.items():
        out[name] = frame[column]
    if TRANSACTION_ID not in out:
        out[TRANSACTION_ID] = np.arange(len(frame))  # as replay: the data row number
    for name, copied in mapping.derived.items():
        out[name] = out[copied]
    out = out[list(TRAINING_COLUMNS)]
    out[TX_DATETIME] = _parse_times(out[TX_DATETIME], mapping, source)
    for name, parse, what in ((AMOUNT, as_number, "numeric"), (IS_FRAUD, as_label, "a 0/1 label")):
        if not pd.api.types.is_numeric_dtype(out[name]):
            values, missing, bad = parse(_as_arrow(out[name]))
            _refuse_bad(out[name], bad, f"{source}: column {mapping.fields[name]!r} ({name}) is not {what}")
            out[name] = np.where(missing, np.nan, values.astype("float64"))
    return validate_transactions(out, source=source)


def _parse_times(values: pd.Series, mapping: ColumnMapping, source: str) -> pd.Series:
    """tx_datetime as naive UTC, by the mapping's time format (replay's parser, fraudctl.data.replay.parse)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values
        if isinstance(parsed.dtype, pd.DatetimeTZDtype):
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        return parsed.astype("datetime64[ns]")
    from fraudctl.data.replay.parse import as_time_us, time_mode

    column = _as_arrow(values)
    mode = time_mode(column, mapping.time_format, mapping.start_us)
    us, missing, bad = as_time_us(column, mode, mapping.start_us)
    _refuse_bad(values, bad, f"{source}: column {mapping.fields.get(TX_DATETIME, TX_DATETIME)!r} ({TX_DATETIME}) "
                             f"is not a {mode} time")
    times = us.astype("datetime64[us]").astype("datetime64[ns]")
    times[missing] = np.datetime64("NaT")
    return pd.Series(times, index=values.index)


def _as_arrow(values: pd.Series):
    """A pandas column as an Arrow array for the parsers: numbers stay numbers, anything else is text."""
    import pyarrow as pa

    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return pa.array(values, from_pandas=True)
    try:
        return pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python types: their text
        return pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())


def _refuse_bad(values: pd.Series, bad: np.ndarray, message: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise BadInputError(f"{message}, e.g. {values.iloc[row]!r} in row {row}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_lake(location: str, layout: InputLayout, storage: "StorageConfig | None",
               since: dt.date | None, until: dt.date | None):
    """A directory of parquet files, hive-partitioned (e.g. day=2018-04-01/part-0.parquet) or flat."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    filesystem, path = (s3_filesystem(storage), location[len("s3://"):]) if location.startswith("s3://") \
        else (None, location)
    try:
        dataset = ds.dataset(path, filesystem=filesystem, format="parquet", partitioning="hive",
                             exclude_invalid_files=True)
    except FileNotFoundError:
        raise NotFoundError(f"lake not found: {location}") from None
    except OSError as exc:
        # pyarrow reports S3 connection and permission problems as OSError.
        raise UnavailableError(f"cannot read the lake at {location}: {exc}") from None
    if not dataset.files:
        raise NotFoundError(f"lake {location}: no parquet files")

    mapping = _resolve(list(dataset.schema.names), layout, location)
    time_column = mapping.fields[TX_DATETIME]
    conditions = []
    partition_names = dataset.partitioning.schema.names if dataset.partitioning is not None else []
    for name in LAKE_PARTITION_FIELDS:
        if name not in partition_names:
            continue
        kind = dataset.schema.field(name).type
        as_text = pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)
        # ISO dates compare as text in calendar order.
        if since is not None:
            conditions.append(ds.field(name) >= (since.isoformat() if as_text else since))
        if until is not None:
            conditions.append(ds.field(name) < (until.isoformat() if as_text else until))
    if time_column in dataset.schema.names and pa.types.is_timestamp(dataset.schema.field(time_column).type):
        kind = dataset.schema.field(time_column).type
        if since is not None:
            conditions.append(ds.field(time_column) >= pa.scalar(pd.Timestamp(since, tz="UTC" if kind.tz else None), type=kind))
        if until is not None:
            conditions.append(ds.field(time_column) < pa.scalar(pd.Timestamp(until, tz="UTC" if kind.tz else None), type=kind))
    expression = None
    for condition in conditions:
        expression = condition if expression is None else expression & condition
    try:
        table = dataset.to_table(filter=expression)
        infos = (filesystem or _local_fs()).get_file_info(sorted(dataset.files))
    except OSError as exc:
        raise UnavailableError(f"cannot read the lake at {location}: {exc}") from None
    digest = hashlib.sha256()
    for info in infos:
        digest.update(f"{info.path}\0{info.size}\0{info.mtime_ns}\n".encode())
    return table.to_pandas(), mapping, digest.hexdigest(), len(infos)


def _local_fs():
    from pyarrow import fs

    return fs.LocalFileSystem()


# ------------------------------------------------------------------------------------------ end to end


def train_from_source(source: str | Path, model: "ModelConfig", *, layout: InputLayout | None = None,
                      storage: "StorageConfig | None" = None, train_start: dt.date | None = None,
                      spec: FeatureSpec | None = None,
                      progress: "Callable[[str], None] | None" = None) -> tuple[LoadedData, TrainingResult]:
    """Load, compute features, split (config windows; latest possible unless `train_start`), train.

    The feature delay and the split's delay gap are both `model.label_delay_days`: one notion of when
    labels arrive.
    """
    say = progress or (lambda step: None)
    spec = spec or FeatureSpec(delay_days=model.label_delay_days)
    windows = dict(train_days=model.train_days, delay_days=model.label_delay_days, test_days=model.test_days,
                   validation_days=model.validation_days)
    since = until = None
    if train_start is not None:
        split = SplitSpec(train_start, **windows)
        since = split.first_day_needed - dt.timedelta(days=spec.history_days)
        until = split.test_end
    say(f"loading {source}")
    data = load_transactions(source, layout=layout, storage=storage, since=since, until=until)
    if train_start is None:
        split = default_split(data.frame, **windows)
    say(f"computing features over {len(data.frame):,} transactions")
    featured = prepare(data.frame, spec, source=data.source)
    say(f"training {model.estimator} on {split.train_start}..{split.train_end} (exclusive), "
        f"testing on {split.test_start}..{split.test_end}")
    result = train(featured, split, estimator=model.estimator, spec=spec,
                   alert_budget_per_day=model.alert_budget_per_day, precision_target=model.precision_target,
                   random_state=model.random_state)
    return data, result
