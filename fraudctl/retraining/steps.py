"""The steps of the `fraud_retrain` DAG (dags/fraud_retrain.py) as plain functions over a Config and paths.

Each Airflow task is one call here, so the logic runs (and is tested) without Airflow, and the DAG holds no
second copy of what `fraudctl train` and `fraudctl promote` do: training goes through
`fraudctl.model.workflows.train_and_register`, the comparison through `fraudctl.model.registry.compare` (the pure
`gate` inside), the promotion through `fraudctl.model.workflows.promote_version`.

Steps pass paths, never data: each writes its output under `<state_dir>/retrain/<run id>/` and returns a
small JSON-ready dict (Airflow's XCom) naming the files.

    extract   the lake's window (or a file) -> extract.parquet (contract layout) + extract.json (lineage)
    validate  schema, row counts, label rate, freshness -> validate.json; BadInputError names the check
    train     train, log to MLflow, register as @challenger -> train.json (+ tags: DAG run, lake lineage)
    evaluate  candidate and champion on the candidate's holdout, the gate -> evaluate.json
    promote   move @champion (only when the gate passed) -> promote.json
    report    versions, metrics, decision -> report.json (and the returned dict)
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from fraudctl.contracts import TRAINING_COLUMNS
from fraudctl.errors import BadInputError

if TYPE_CHECKING:
    from fraudctl.config import Config, StorageConfig

Log = Callable[[str], None]
RETRAIN_DIR = "retrain"


@dataclass(frozen=True)
class RetrainParams:
    """A run's parameters (Airflow Params, defaults from the config), checked."""

    window_days: int
    estimator: str
    promotion_margin: float
    alert_budget_per_day: int  # the threshold's alerts a day, as `fraudctl train --alert-budget`
    source: str  # "" reads the lake
    cutoff: str  # "" is the run's time; else an ISO date or datetime (UTC)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def param_defaults(config: "Config") -> dict[str, Any]:
    return {"window_days": config.retrain.window_days, "estimator": config.model.estimator,
            "promotion_margin": config.model.promotion_margin,
            "alert_budget_per_day": config.model.alert_budget_per_day, "source": config.retrain.source or "",
            "cutoff": ""}


def check_params(config: "Config", raw: Mapping[str, Any]) -> RetrainParams:
    """The run's parameters over the config's defaults; a bad one raises BadInputError with the reason."""
    from fraudctl.model.estimators import ESTIMATORS

    values = {**param_defaults(config), **{k: v for k, v in raw.items() if v is not None}}
    unknown = set(values) - set(param_defaults(config))
    if unknown:
        raise BadInputError(f"unknown parameter(s): {', '.join(sorted(unknown))}",
                            hint=f"known: {', '.join(param_defaults(config))}")
    problems: list[str] = []
    window_days = _whole_number(values, "window_days", problems)
    if values["estimator"] not in ESTIMATORS:
        problems.append(f"estimator must be one of {', '.join(ESTIMATORS)}, not {values['estimator']!r}")
    try:
        margin = float(values["promotion_margin"])
        if not margin >= 0:
            raise ValueError
    except (TypeError, ValueError):
        problems.append(f"promotion_margin must be a number >= 0, not {values['promotion_margin']!r}")
        margin = 0.0
    budget = _whole_number(values, "alert_budget_per_day", problems)
    source = str(values["source"] or "")
    if source and not source.startswith("s3://") and not Path(source).exists():
        problems.append(f"source {source!r} does not exist (on the worker)")
    cutoff = str(values["cutoff"] or "")
    if cutoff:
        try:
            parse_cutoff(cutoff)
        except ValueError:
            problems.append(f"cutoff must be an ISO date or datetime, e.g. 2018-05-16, not {cutoff!r}")
    if problems:
        raise BadInputError("bad parameter: " + "; ".join(problems))
    return RetrainParams(window_days, str(values["estimator"]), margin, budget, source, cutoff)


def _whole_number(values: Mapping[str, Any], name: str, problems: list[str]) -> int:
    """values[name] as a whole number >= 1; else 0, and why in `problems`."""
    try:
        number = int(values[name])
        if number < 1 or number != float(values[name]):
            raise ValueError
        return number
    except (TypeError, ValueError):
        problems.append(f"{name} must be a whole number >= 1, not {values[name]!r}")
        return 0


def parse_cutoff(text: str) -> dt.datetime:
    """An ISO date (midnight) or datetime, as naive UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def run_dir(config: "Config", run_id: str) -> Path:
    """Where a DAG run's steps write: <state_dir>/retrain/<run id, made safe for a file name>."""
    folder = config.state_dir / RETRAIN_DIR / re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _write_json(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data, indent=2, default=str))
    return str(path)


def _read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------------- extract


def extract(config: "Config", params: RetrainParams, folder: Path, run_time: dt.datetime, *,
            storage: "StorageConfig", log: Log = print) -> dict[str, Any]:
    """The training window as contract-layout parquet: from the lake (transactions of the last
    `window_days` event days up to the cutoff, labels that had arrived by it), or from `params.source`."""
    cutoff = parse_cutoff(params.cutoff) if params.cutoff else run_time.replace(tzinfo=None)
    until = (cutoff - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1)  # exclusive
    since = until - dt.timedelta(days=params.window_days)
    if params.source:
        from fraudctl.data.layout import InputLayout
        from fraudctl.model.training import load_transactions

        log(f"reading {params.source} for {since}..{until} (exclusive)")
        data = load_transactions(params.source, layout=InputLayout.from_settings(config.layout, None),
                                 storage=storage, since=since, until=until)
        frame = data.frame
        lineage = {**data.lineage(), "format": data.kind, "kind": "source", "since": since.isoformat(), "until": until.isoformat(),
                   "cutoff": cutoff.isoformat()}
    else:
        from fraudctl.data.lake import lake_uri, read_training_frame

        log(f"reading the lake {lake_uri(config)} for event days {since}..{until} (exclusive), labels "
            f"arrived by {cutoff.isoformat()}")
        frame, lineage = read_training_frame(config, storage, since=since, until=until, cutoff=cutoff)
        frame = frame[frame["tx_datetime"] <= cutoff]
        lineage = {"kind": "lake", **lineage, "rows": int(len(frame))}
    path = folder / "extract.parquet"
    frame.to_parquet(path, index=False)
    lineage_path = _write_json(folder / "extract.json", lineage)
    log(f"wrote {len(frame):,} transactions to {path} ({lineage.get('labelled', int(frame['is_fraud'].notna().sum())):,} "
        f"labelled); lineage in {lineage_path}")
    return {"path": str(path), "lineage_path": lineage_path, "cutoff": cutoff.isoformat(),
            "since": since.isoformat(), "until": until.isoformat(), "rows": int(len(frame))}


# ------------------------------------------------------------------------------------------ validate


def validate(config: "Config", extracted: Mapping[str, Any], folder: Path, log: Log = print) -> dict[str, Any]:
    """Schema, row counts, label rate within bounds, freshness. A failed check raises BadInputError naming
    the check and the numbers; the checks and their numbers go to validate.json either way."""
    import pandas as pd

    rc = config.retrain
    frame = pd.read_parquet(extracted["path"])
    cutoff = parse_cutoff(extracted["cutoff"])
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        log(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")

    missing = [c for c in TRAINING_COLUMNS if c not in frame.columns]
    check("schema", not missing and pd.api.types.is_datetime64_any_dtype(frame.get("tx_datetime"))
          and pd.api.types.is_numeric_dtype(frame.get("amount")),
          f"missing columns {missing}" if missing else
          f"columns {list(frame.columns)}, tx_datetime {frame['tx_datetime'].dtype}, amount {frame['amount'].dtype}")
    labelled = frame[frame["is_fraud"].notna()] if "is_fraud" in frame else frame.iloc[0:0]
    check("row_count", len(labelled) >= rc.min_rows,
          f"{len(labelled):,} labelled of {len(frame):,} transactions, at least {rc.min_rows:,} needed")
    rate = float(labelled["is_fraud"].mean()) if len(labelled) else float("nan")
    check("label_rate", len(labelled) > 0 and rc.min_label_rate <= rate <= rc.max_label_rate,
          f"fraud rate {rate:.5f} ({int(labelled['is_fraud'].sum()) if len(labelled) else 0:,} frauds), "
          f"allowed {rc.min_label_rate:g}..{rc.max_label_rate:g}")
    newest = frame["tx_datetime"].max() if len(frame) else None
    age = (cutoff - newest.to_pydatetime()).total_seconds() / 86400 if newest is not None else float("inf")
    check("freshness", age <= rc.max_staleness_days,
          f"newest transaction {newest} is {age:.2f} days before the cutoff {cutoff.isoformat()}, "
          f"at most {rc.max_staleness_days} allowed")
    _write_json(folder / "validate.json", checks)
    failed = [c for c in checks if not c["ok"]]
    if failed:
        raise BadInputError("validation failed: " + "; ".join(f"{c['check']}: {c['detail']}" for c in failed))
    return {"path": extracted["path"], "checks": str(folder / "validate.json"), "labelled": int(len(labelled))}


# --------------------------------------------------------------------------------------------- train


def train(config: "Config", params: RetrainParams, extracted: Mapping[str, Any], folder: Path, *,
          storage: "StorageConfig", dag_id: str, run_id: str, log: Log = print) -> dict[str, Any]:
    """`fraudctl train` on the extracted window (the same `train_and_register`), the split ending with the
    last labelled day; the version gets the DAG run and the extract's lineage as tags and an artifact."""
    import pandas as pd

    from fraudctl.model.registry import Registry
    from fraudctl.contracts import TAG_PREFIX as TAG
    from fraudctl.model.training import default_split
    from fraudctl.model.workflows import train_and_register

    cfg = config.model_copy(update={"model": config.model.model_copy(update={
        "estimator": params.estimator, "alert_budget_per_day": params.alert_budget_per_day})})
    frame = pd.read_parquet(extracted["path"], columns=["tx_datetime", "is_fraud"])
    labelled = frame[frame["is_fraud"].notna()]
    if not len(labelled):
        raise BadInputError("no labelled transactions to train on")
    m = cfg.model
    split = default_split(labelled, train_days=m.train_days, delay_days=m.label_delay_days, test_days=m.test_days,
                          validation_days=m.validation_days)
    log(f"training {m.estimator} with the split ending on the last labelled day: {split.as_dict()}")
    summary = train_and_register(cfg, extracted["path"], storage=storage, train_start=split.train_start,
                                 progress=log)
    registered = summary["registered"]
    lineage = _read_json(extracted["lineage_path"])
    registry = Registry(cfg)
    with registry.errors("tagging the retrained version"):
        client = registry.client
        tags = {"dag_id": dag_id, "dag_run_id": run_id, "retrain_source": lineage.get("kind", ""),
                "retrain_window": f"{extracted['since']}..{extracted['until']}",
                "retrain_cutoff": extracted["cutoff"],
                "retrain_lake_files": str(len(lineage.get("transaction_files", [])))}
        for key, value in tags.items():
            client.set_model_version_tag(registry.name, registered["version"], TAG + key, value)
            client.set_tag(registered["run_id"], TAG + key, value)
        client.log_dict(registered["run_id"], {"dag_id": dag_id, "dag_run_id": run_id, **lineage},
                        "retrain_lineage.json")
    path = _write_json(folder / "train.json", summary)
    log(f"registered {registered['name']} version {registered['version']} as @{registered['alias']}; "
        f"summary in {path}")
    return {"version": registered["version"], "run_id": registered["run_id"], "summary_path": path}


# -------------------------------------------------------------------------------- evaluate / promote


def evaluate(config: "Config", params: RetrainParams, trained: Mapping[str, Any], folder: Path,
             log: Log = print) -> dict[str, Any]:
    """Candidate and champion on the candidate's holdout, through the promotion gate."""
    from fraudctl.model.registry import Registry, compare

    comparison = compare(Registry(config), trained["version"], margin=params.promotion_margin)
    path = _write_json(folder / "evaluate.json", comparison.as_dict())
    log(f"version {comparison.candidate} vs champion {comparison.champion or 'none'}: "
        f"{'passes' if comparison.passes else 'does not pass'} the gate ({comparison.reason})")
    return {"passes": bool(comparison.passes), "reason": comparison.reason, "comparison_path": path,
            "version": trained["version"], "champion": comparison.champion}


def promote(config: "Config", params: RetrainParams, evaluated: Mapping[str, Any], folder: Path,
            log: Log = print) -> dict[str, Any]:
    """`fraudctl promote` (the same `promote_version`) with the run's margin; the gate is applied again, so a
    champion that changed since `evaluate` is not overwritten blindly."""
    from fraudctl.errors import RefusedError
    from fraudctl.model.workflows import promote_version

    cfg = config.model_copy(update={"model": config.model.model_copy(
        update={"promotion_margin": params.promotion_margin})})
    try:
        result = promote_version(cfg, evaluated["version"])
    except RefusedError as exc:
        result = {"changed": False, "reason": exc.message}
    _write_json(folder / "promote.json", result)
    log(f"promotion of version {evaluated['version']}: {'done' if result.get('changed') else 'not done'} "
        f"({result.get('reason')})")
    return {"changed": bool(result.get("changed")), "reason": result.get("reason"),
            "previous": result.get("previous")}


# -------------------------------------------------------------------------------------------- report


def report(config: "Config", params: RetrainParams, folder: Path, *, dag_id: str, run_id: str,
           extracted: Mapping[str, Any], trained: Mapping[str, Any], evaluated: Mapping[str, Any],
           promoted: Mapping[str, Any] | None, log: Log = print) -> dict[str, Any]:
    """What happened, in one small document (also report.json and a version tag)."""
    from fraudctl.model.registry import Registry
    from fraudctl.contracts import TAG_PREFIX as TAG

    summary = _read_json(trained["summary_path"])
    lineage = _read_json(extracted["lineage_path"])
    comparison = _read_json(evaluated["comparison_path"])
    decision = "promoted" if promoted and promoted.get("changed") else "kept_as_challenger"
    reason = (promoted or {}).get("reason") or evaluated["reason"]
    result = {
        "dag_id": dag_id, "dag_run_id": run_id, "params": params.as_dict(),
        "version": trained["version"], "mlflow_run_id": trained["run_id"],
        "champion_before": evaluated.get("champion"),
        "promoted": decision == "promoted", "decision": decision, "reason": reason,
        "metrics": summary["metrics"], "window": summary["window"],
        "candidate_metrics": comparison["candidate_metrics"], "champion_metrics": comparison["champion_metrics"],
        "data": {"kind": lineage.get("kind"), "since": extracted["since"], "until": extracted["until"],
                 "cutoff": extracted["cutoff"], "rows": lineage.get("rows"), "labelled": lineage.get("labelled"),
                 "lake_files": len(lineage.get("transaction_files", [])),
                 "label_files": len(lineage.get("label_files", [])),
                 "duplicates_dropped": lineage.get("duplicates_dropped")},
        "folder": str(folder),
    }
    registry = Registry(config)
    with registry.errors("tagging the retrained version"):
        registry.client.set_model_version_tag(registry.name, trained["version"], TAG + "retrain_decision",
                                              f"{decision}: {reason}"[:500])
    _write_json(folder / "report.json", result)
    log(f"{dag_id} {run_id}: version {trained['version']} {decision.replace('_', ' ')} ({reason})")
    return result
