"""The rule condition language (fraudctl.rules.condition): what it accepts evaluates vectorised exactly as a
row-by-row reading would; anything that could run code, touch a file or blow up is refused when the rule is
made, with the position and what was expected."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraudctl.errors import ExitCode
from fraudctl.features import FEATURE_NAMES
from fraudctl.rules.condition import ConditionError, compile_condition, field_types


def batch(n: int = 500, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.uniform(0, 10, n) for name in FEATURE_NAMES})
    frame["amount"] = rng.uniform(0, 1000, n)
    frame["customer_tx_count_1d"] = rng.integers(1, 10, n).astype(float)
    frame["is_night"] = rng.integers(0, 2, n).astype(float)
    frame["customer_mean_amount_30d"] = np.where(rng.uniform(size=n) < 0.1, 0.0, frame["customer_mean_amount_30d"])
    frame["terminal_id"] = [f"T{i % 7}" for i in range(n)]
    frame["customer_id"] = [f"C{i % 13}" for i in range(n)]
    frame["transaction_id"] = [f"x{i}" for i in range(n)]
    return frame


CASES = [  # (condition, the same thing row by row)
    ("amount > 500 and customer_tx_count_1d >= 5", lambda r: r.amount > 500 and r.customer_tx_count_1d >= 5),
    ("amount <= 20 or not is_night == 1", lambda r: r.amount <= 20 or not r.is_night == 1),
    ("100 < amount <= 300", lambda r: 100 < r.amount <= 300),
    ('terminal_id in ("T1", "T3") and customer_id not in ["C2"]',
     lambda r: r.terminal_id in ("T1", "T3") and r.customer_id not in ["C2"]),
    # x / 0 is inf (0 / 0 nan, which compares false), as numpy has it
    ("amount / customer_mean_amount_30d > 3",
     lambda r: r.amount / r.customer_mean_amount_30d > 3 if r.customer_mean_amount_30d else r.amount > 0),
    ("amount * 2 - -1 >= 1000 + 0.5", lambda r: r.amount * 2 - -1 >= 1000 + 0.5),
    ("customer_tx_count_1d in (1, 2, 3) != False", lambda r: r.customer_tx_count_1d in (1, 2, 3)),
    ('transaction_id == "x7" or terminal_id != "T0" and amount < 50',
     lambda r: r.transaction_id == "x7" or (r.terminal_id != "T0" and r.amount < 50)),
]


@pytest.mark.parametrize("text,by_row", CASES, ids=[c[0] for c in CASES])
def test_a_condition_evaluates_over_the_batch_as_row_by_row(text, by_row):
    if "!= False" in text:  # `x in (...) != False` is refused: a comparison cannot follow `in`
        with pytest.raises(ConditionError, match="cannot follow"):
            compile_condition(text)
        return
    frame = batch()
    got = compile_condition(text).evaluate(frame)
    expected = np.array([bool(by_row(row)) for row in frame.itertuples()])
    assert got.dtype == bool and got.shape == (len(frame),)
    assert (got == expected).all()
    assert 0 < got.sum() < len(frame)  # the case says something


def test_a_condition_names_the_fields_it_reads_and_an_empty_batch_gives_no_rows():
    condition = compile_condition("amount > 1 and terminal_id == 'T1'")
    assert condition.fields == ("amount", "terminal_id")
    assert compile_condition("amount > 1").evaluate(batch().iloc[:0]).shape == (0,)


MALICIOUS = [  # (text, what the message says, column)
    ("amount.__class__ == 1", "attribute access", 1),
    ("__import__('os').system('id') == 0", "a function call", 1),
    ("open('/etc/passwd').read() == ''", "a function call", 1),
    ("amount > 1 and len(terminal_id) > 2", "a function call", 16),
    ("10**10**10 > amount", "operator Pow", 1),
    ("amount > 1" + "0" * 40, "number literal too large", 10),
    ("terminal_id == '" + "a" * 500 + "'", "string literal of 500 characters", 16),
    ("amount in (" + ",".join(["1"] * 1001) + ")", "a list of 1,001 items", 11),
    ("amount > " + "1 + " * 3000 + "1", "condition of", 1),
    ("amount > " + "1 + " * 100 + "1", "nested deeper", 10),
    ("(lambda: 1)() == 1", "a function call", 1),
    ("[x for x in terminal_id] == 1", "a comprehension", 1),
    ("terminal_id[0] == 'a'", "a subscript", 1),
    ("(amount := 5) > 1", "an assignment", 2),
    ("f'{amount}' == 'a'", "an f-string", 1),
    ("amount if True else 1", "an if-expression", 1),
    ("amount > 1; import os", "syntax error", 11),
    ("amount > 1\nimport os", "syntax error", 1),
    ("__builtins__ == 1", "unknown field '__builtins__'", 1),
    ("amount in terminal_id", "takes a literal list", 11),
]


@pytest.mark.parametrize("text,message,column", MALICIOUS, ids=[m[1] + str(i) for i, m in enumerate(MALICIOUS)])
def test_anything_but_the_grammar_is_refused_with_its_position(text, message, column):
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert message in caught.value.message
    assert caught.value.column == column, caught.value.message
    assert caught.value.exit_code == ExitCode.BAD_INPUT


def test_nesting_is_bounded():
    with pytest.raises(ConditionError, match="nested|parentheses"):
        compile_condition("(" * 250 + "amount > 1" + ")" * 250)
    with pytest.raises(ConditionError, match="nested deeper"):
        compile_condition("not " * 40 + "amount > 1")


TYPE_ERRORS = [
    ("amout > 500", "unknown field 'amout'", "did you mean 'amount'?"),
    ("amount > 'big'", "number > string", "expected both sides of the same type"),
    ("terminal_id > 'T1'", "strings compare with == or != only", ""),
    ("amount and terminal_id == 'x'", "a number in and/or", "expected a bool"),
    ("amount + 1", "the condition is a number", "expected a comparison"),
    ("'a' + terminal_id == 'b'", "a string in +", "expected a number"),
    ("terminal_id in (1, 2)", "a number in a list compared with a string", ""),
    ("1 < 2", "names no field", ""),
    ("", "empty condition", ""),
]


@pytest.mark.parametrize("text,message,expected", TYPE_ERRORS, ids=[t[1] for t in TYPE_ERRORS])
def test_type_errors_and_unknown_fields_are_refused_before_any_data(text, message, expected):
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert message in caught.value.message and expected in caught.value.message


def test_the_error_points_at_the_line_and_column_with_a_caret():
    with pytest.raises(ConditionError) as caught:
        compile_condition("amount > 500 and\n  customer_tx_count_1dd >= 5")  # a YAML block may span lines
    error = caught.value
    assert (error.line, error.column) == (2, 3)
    assert error.message.startswith("condition 2:3: unknown field 'customer_tx_count_1dd'")
    assert error.detail.splitlines()[1].index("^") == 2 + 2  # under the field, after the two-space indent


def test_the_schema_is_every_feature_and_the_ids():
    types = field_types()
    assert set(FEATURE_NAMES) <= set(types) and types["amount"] == "number"
    assert types["terminal_id"] == types["customer_id"] == types["transaction_id"] == "string"
