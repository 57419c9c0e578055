"""fraudctl.data.layout: presets, column mapping, time formats and starts, and the one list of choices that the
CLI and the config both use."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from fraudctl import contracts as c
from fraudctl.errors import BadInputError
from fraudctl.data.layout import (
    PRESET_NAMES, PRESETS, REQUIRED_FIELDS, TIME_FORMATS, InputLayout, auto_time_format, parse_map_items,
    parse_start, resolve_format, resolve_mapping,
)


# --- mapping ---------------------------------------------------------------------------------------------
def test_parse_map_items():
    assert parse_map_items(["amt=amount", " cc_num = customer_id ", "Unnamed="]) == {
        "amt": "amount", "cc_num": "customer_id", "Unnamed": ""}
    with pytest.raises(BadInputError, match="expected SOURCE=FIELD"):
        parse_map_items(["amt"])
    with pytest.raises(BadInputError, match="is not a field") as caught:
        parse_map_items(["amount=amt"])  # the other way round
    assert caught.value.hint == "the source column comes first: --map amt=amount"


@pytest.mark.parametrize("header, preset", [
    (list(c.GENERATED_COLUMNS), "generator"),
    (["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"], "ulb"),
    (["", "trans_date_trans_time", "cc_num", "merchant", "category", "amt", "trans_num", "is_fraud"], "sparkov"),
])
def test_auto_recognises_each_preset(header, preset):
    mapping = resolve_mapping(header)
    assert mapping.preset == preset
    assert set(REQUIRED_FIELDS) <= set(mapping.fields) | set(mapping.derived)


def test_generator_preset_ignores_the_ground_truth_scenario():
    mapping = resolve_mapping(list(c.GENERATED_COLUMNS))
    assert mapping.fields == {name: name for name in (c.TRANSACTION_ID, c.TX_DATETIME, c.CUSTOMER_ID,
                                                       c.TERMINAL_ID, c.AMOUNT, c.IS_FRAUD)}
    assert mapping.ignored == (c.FRAUD_SCENARIO,)
    assert mapping.candidates == ()


def test_ulb_preset_derives_the_ids_and_needs_a_start():
    header = ["Time", *[f"V{i}" for i in range(1, 29)], "Amount", "Class"]
    mapping = resolve_mapping(header)
    assert mapping.derived == {c.CUSTOMER_ID: c.TRANSACTION_ID, c.TERMINAL_ID: c.TRANSACTION_ID}
    assert mapping.time_format == "offset"
    assert mapping.start_us == parse_start("2013-09-01T00:00:00Z")
    assert mapping.candidates == tuple(f"V{i}" for i in range(1, 29))
    assert resolve_mapping(header, start="2020-01-01").start_us == parse_start("2020-01-01T00:00:00Z")


def test_sparkov_preset_maps_its_columns():
    header = ["", "trans_date_trans_time", "cc_num", "merchant", "amt", "zip", "trans_num", "is_fraud"]
    mapping = resolve_mapping(header)
    assert mapping.fields == {c.TX_DATETIME: "trans_date_trans_time", c.CUSTOMER_ID: "cc_num",
                              c.TERMINAL_ID: "merchant", c.AMOUNT: "amt", c.IS_FRAUD: "is_fraud",
                              c.TRANSACTION_ID: "trans_num"}
    assert mapping.ignored == ("",)
    assert mapping.candidates == ("zip",)


def test_map_overrides_the_preset_and_can_ignore_a_column():
    header = ["when", "card", "shop", "value", "fraud", "noise"]
    with pytest.raises(BadInputError, match="no column for field") as caught:
        resolve_mapping(header)
    assert "--map" in caught.value.hint
    mapping = resolve_mapping(header, columns={"when": "tx_datetime", "card": "customer_id", "shop": "terminal_id",
                                               "value": "amount", "fraud": "is_fraud", "noise": ""})
    assert mapping.fields[c.AMOUNT] == "value" and mapping.has_labels
    assert mapping.ignored == ("noise",) and mapping.candidates == ()
    # over a preset: another column takes the field, the preset's column falls back to pass-through
    mapping = resolve_mapping(list(c.GENERATED_COLUMNS), columns={"fraud_scenario": "terminal_id"})
    assert mapping.fields[c.TERMINAL_ID] == "fraud_scenario"
    assert "terminal_id" in mapping.candidates and "fraud_scenario" not in mapping.ignored


def test_mapping_errors_name_the_problem():
    with pytest.raises(BadInputError, match="no column 'nope'"):
        resolve_mapping(list(c.GENERATED_COLUMNS), columns={"nope": "amount"})
    with pytest.raises(BadInputError, match="more than once"):
        resolve_mapping(["a", "a"])
    with pytest.raises(BadInputError, match="unknown preset"):
        resolve_mapping(list(c.GENERATED_COLUMNS), preset="nope")
    with pytest.raises(BadInputError, match="need a start"):
        resolve_mapping(list(c.GENERATED_COLUMNS), time_format="offset")


def test_starts():
    assert parse_start("1970-01-02") == 86_400 * 1_000_000
    assert parse_start("1970-01-01T01:00:00+01:00") == 0
    with pytest.raises(BadInputError):
        parse_start("yesterday")


def test_auto_time_format_rule():
    assert auto_time_format(numeric=False, start_us=0, largest=5.0) == "iso"
    assert auto_time_format(numeric=True, start_us=0, largest=1e12) == "offset"
    assert auto_time_format(numeric=True, start_us=None, largest=1e11) == "epoch_ms"
    assert auto_time_format(numeric=True, start_us=None, largest=1e11 - 1) == "epoch_s"
    assert auto_time_format(numeric=True, start_us=None, largest=None) == "epoch_s"


def test_layout_from_config_settings_and_map_items():
    from fraudctl.config import Config

    config = Config(layout={"preset": "sparkov", "columns": {"zip": ""}, "time_format": "iso"})
    layout = InputLayout.from_settings(config.layout, ["amt=amount"])
    assert layout == InputLayout("sparkov", {"zip": "", "amt": "amount"}, "iso", None)
    header = ["trans_date_trans_time", "cc_num", "merchant", "amt", "zip", "is_fraud"]
    assert layout.resolve(header).ignored == ("zip",)


def test_one_list_of_choices_for_the_cli_and_the_config():
    from fraudctl.cli.common import PresetName, TimeFormat
    from fraudctl.config import LayoutConfig

    assert PRESET_NAMES == ("auto", *PRESETS)
    assert tuple(p.value for p in PresetName) == PRESET_NAMES
    assert tuple(t.value for t in TimeFormat) == TIME_FORMATS
    hints = typing.get_type_hints(LayoutConfig)
    assert typing.get_args(hints["preset"]) == PRESET_NAMES
    assert typing.get_args(hints["time_format"]) == TIME_FORMATS


@pytest.mark.parametrize("command", ["replay", "train"])
def test_both_commands_read_the_layout_section_with_flags_over_it(command, tmp_path, monkeypatch):
    """`replay FILE` and `train --data FILE` build the same layout from `layout:` and the same four flags."""
    from fraudctl.cli import run
    from fraudctl.errors import ExitCode

    seen = []
    if command == "replay":
        def fake_replay(config, options, **kwargs):
            seen.append(options.layout)
            raise BadInputError("stop here")

        # the name the command imports (`from fraudctl.data.replay import replay`; the package loads it lazily)
        monkeypatch.setattr("fraudctl.data.replay.replay", fake_replay, raising=False)
    else:
        def fake_train(config, source, *, layout, **kwargs):
            seen.append(layout)
            raise BadInputError("stop here")

        monkeypatch.setattr("fraudctl.model.workflows.train_and_register", fake_train)
    config = tmp_path / "fraudctl.yaml"
    config.write_text(f"runtime: {{state_dir: {tmp_path / 'state'}}}\nkafka: {{port: 1}}\n"
                      "layout: {preset: ulb, columns: {amt: amount, zip: ''}, time_format: offset, start: '2020-01-01'}\n")
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    target = [str(data)] if command == "replay" else ["--data", str(data), "--dry-run"]
    assert run(["-c", str(config), command, *target]) == ExitCode.BAD_INPUT
    assert run(["-c", str(config), command, *target, "--preset", "sparkov", "--map", "cc=customer_id",
                "--time-format", "iso", "--start", "2021-01-01"]) == ExitCode.BAD_INPUT
    assert seen == [InputLayout("ulb", {"amt": "amount", "zip": ""}, "offset", "2020-01-01"),
                    InputLayout("sparkov", {"amt": "amount", "zip": "", "cc": "customer_id"}, "iso", "2021-01-01")]


# --- file formats ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, kind", [
    ("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.csv", "csv"), ("a.csv.gz", "csv"), ("a.txt", "csv"),
])
def test_a_reader_tells_the_format_from_more_names_than_a_writer(name, kind):
    assert resolve_format(Path(name)) == kind
    if name in ("a.parquet", "a.csv"):
        assert resolve_format(Path(name), writing=True) == kind
    else:  # the generator writes plain files only
        with pytest.raises(BadInputError, match="cannot tell the format"):
            resolve_format(Path(name), writing=True)


def test_a_format_option_contradicting_the_name_is_refused_only_for_writing():
    assert resolve_format(Path("a.csv"), "parquet") == "parquet"
    with pytest.raises(BadInputError, match="does not match"):
        resolve_format(Path("a.csv"), "parquet", writing=True)
    assert resolve_format(Path("noext"), "csv", writing=True) == "csv"
    for writing in (False, True):
        with pytest.raises(BadInputError, match="unknown format"):
            resolve_format(Path("a.csv"), "xlsx", writing=writing)
