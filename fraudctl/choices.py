"""Closed sets of values that a config key accepts and a CLI option offers, each written once: the config
field is typed with the Literal, the CLI builds its choices from the tuple, so the two cannot drift apart.

Imports nothing heavy: the CLI reads it at `--help` time. Input layouts (presets, time formats, file formats)
live in fraudctl.layout, estimators in fraudctl.estimators.
"""

from __future__ import annotations

from typing import Literal, get_args

# Which runtime runs the stack. auto: compose when a Docker engine answers and no native stack runs, else native.
RuntimeKind = Literal["auto", "native", "compose"]
RUNTIME_KINDS: tuple[str, ...] = get_args(RuntimeKind)
