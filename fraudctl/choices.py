"""Closed sets of values that a config key accepts and a CLI option offers, each written once: the config
field is typed with the Literal, the CLI builds its choices from the tuple, so the two cannot drift apart.

Imports nothing heavy: the CLI reads it at `--help` time, and the config (the bottom layer) types its fields
with them, so no stage's module needs to be imported to validate a config.
"""

from __future__ import annotations

from typing import Literal, get_args

# Which runtime runs the stack. auto: compose when a Docker engine answers and no native stack runs, else native.
RuntimeKind = Literal["auto", "native", "compose"]
RUNTIME_KINDS: tuple[str, ...] = get_args(RuntimeKind)

# Input layouts (fraudctl.data.layout): --preset / layout.preset, --time-format / layout.time_format, --format.
PresetName = Literal["auto", "generator", "ulb", "sparkov"]
PRESET_NAMES: tuple[str, ...] = get_args(PresetName)
TimeFormatName = Literal["auto", "iso", "epoch_s", "epoch_ms", "offset"]
TIME_FORMATS: tuple[str, ...] = get_args(TimeFormatName)
FileFormatName = Literal["csv", "parquet"]
FILE_FORMATS: tuple[str, ...] = get_args(FileFormatName)

# The estimators fraudctl trains (fraudctl.model.estimators builds them).
EstimatorName = Literal["gradient_boosting", "lightgbm", "random_forest", "logistic_regression"]
ESTIMATORS: tuple[str, ...] = get_args(EstimatorName)
DEFAULT_ESTIMATOR: EstimatorName = "lightgbm"
