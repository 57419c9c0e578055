"""The rule condition language: a small, typed, side-effect-free expression over a transaction's fields and
its online features, evaluated vectorised over a micro-batch.

    amount > 500 and customer_tx_count_1d >= 5
    terminal_id in ("T17", "T42") or (terminal_fraud_share_7d > 0.2 and not is_night == 1)
    0 < amount / customer_mean_amount_30d <= 10

Grammar (Python's expression syntax, a whitelisted subset): `and`, `or`, `not`; comparisons `== != < <= > >=`,
chained (`0 < x <= 10`); `in` / `not in` over a literal tuple or list (allow-lists and deny-lists); `+ - * /`
and unary minus on numbers; number, string and boolean literals; field names. Nothing else parses into a
condition: no attribute access, subscripts, calls, lambdas, comprehensions, f-strings, `**`, walrus.

Why a parsed, whitelisted grammar and not an expression engine: the text is parsed with `ast.parse` (a parser
only: nothing in the text runs) and every node is checked against the list above before anything is built,
so what a rule can do is exactly what this module implements: arithmetic and comparisons on columns. Polars'
SQL expressions would give the same vectorised evaluation, but would add a large dependency (a Rust engine,
a wheel of tens of MB) the scorer does not otherwise need, a SQL dialect whose function list grows with each
release (each function a new surface to review) and a conversion of every micro-batch from pandas; eval-style
engines (pandas.eval, numexpr) evaluate strings whose safety depends on their own sanitising (DataFrame.query
with the python engine takes attribute access and method calls, e.g. `terminal_id.str.startswith("T")`).
Here a condition compiles to a tree of numpy operations on the batch's columns (each column read once a
batch for all rules): 100 rules over 5 000 rows took 20-34 ms on a loaded 2-core machine (README, "Rules and
reasons").

Limits keep a hostile text cheap to refuse: its length, its nesting depth, each literal's size (numbers up to
1e15 in magnitude, strings up to 200 characters, lists up to 1 000 items). Types are checked against the
field schema before any data is seen: a number compared with a string, `and` over a number, an unknown field
are refused, with the line and column of the mistake and what was expected there.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from fraudctl.contracts import AMOUNT, CUSTOMER_ID, TERMINAL_ID, TRANSACTION_ID
from fraudctl.errors import BadInputError
from fraudctl.features import FEATURE_NAMES

NUMBER, STRING, BOOL = "number", "string", "bool"
MAX_TEXT = 10_000  # characters of a condition (an allow-list of terminals may be long)
MAX_DEPTH = 32  # nesting of the syntax tree
MAX_NUMBER = 1e15  # magnitude of a number literal
MAX_STRING = 200  # characters of a string literal
MAX_ITEMS = 1000  # items of an `in` list


def field_types() -> dict[str, str]:
    """The fields a condition may name: the transaction's ids (strings) and every feature (numbers, amount
    among them)."""
    types = {TRANSACTION_ID: STRING, CUSTOMER_ID: STRING, TERMINAL_ID: STRING, AMOUNT: NUMBER}
    types.update({name: NUMBER for name in FEATURE_NAMES})
    return types


class ConditionError(BadInputError):
    """A condition that cannot be a rule: `line`, `column` (1-based) say where, the message what was expected."""

    def __init__(self, message: str, *, line: int = 1, column: int = 1, text: str = ""):
        where = f"{line}:{column}"
        super().__init__(f"condition {where}: {message}", detail=_caret(text, line, column) if text else None)
        self.reason, self.line, self.column = message, line, column


def _caret(text: str, line: int, column: int) -> str:
    lines = text.splitlines() or [""]
    shown = lines[min(line, len(lines)) - 1]
    return f"  {shown}\n  {' ' * max(column - 1, 0)}^"


Columns = Callable[[str], np.ndarray]  # a field's values for the batch
Evaluate = Callable[[Columns], Any]  # an array or a scalar


@dataclass(frozen=True)
class Condition:
    """A checked condition: `evaluate(frame)` is a boolean array, one value per row."""

    text: str
    fields: tuple[str, ...]
    numbers: frozenset[str]  # the fields read as float64
    _run: Evaluate

    def evaluate(self, frame: pd.DataFrame, cache: dict[str, np.ndarray] | None = None) -> np.ndarray:
        cache = {} if cache is None else cache

        def column(name: str) -> np.ndarray:
            if name not in cache:
                values = frame[name]
                cache[name] = values.to_numpy(dtype="float64") if name in self.numbers else values.to_numpy()
            return cache[name]

        with np.errstate(all="ignore"):  # x / 0 is inf or nan, which compares false: no warning per batch
            result = self._run(column)
        return np.broadcast_to(np.asarray(result, dtype=bool), (len(frame),)).copy()


def compile_condition(text: Any, types: Mapping[str, str] | None = None) -> Condition:
    """Parse, check and compile `text`; ConditionError (exit 11) names the position and what was expected."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition is text, not {type(text).__name__}")
    if not text.strip():
        raise ConditionError("empty condition: expected an expression such as `amount > 500`")
    if len(text) > MAX_TEXT:
        raise ConditionError(f"condition of {len(text):,} characters: at most {MAX_TEXT:,}")
    text = text.strip()
    try:
        # In parentheses, so a condition may span lines (a YAML block); positions are given back without them.
        tree = ast.parse(f"({text}\n)", mode="eval")
    except SyntaxError as exc:
        line, column = exc.lineno or 1, exc.offset or 1
        lines = text.splitlines()
        if line > len(lines):  # at the closing parenthesis: the text ended too soon
            line, column = len(lines), len(lines[-1]) + 1 + (len(lines) == 1)
        raise ConditionError(f"syntax error: {exc.msg}", line=line, column=max(column - (line == 1), 1),
                             text=text) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ConditionError(f"cannot be parsed: {type(exc).__name__}") from None
    checker = _Compiler(dict(types or field_types()), text)
    kind, run = checker.node(tree.body, depth=0)
    if kind != BOOL:
        checker.fail(tree.body, f"the condition is a {kind}: expected a comparison or and/or/not of comparisons")
    if not checker.used:
        checker.fail(tree.body, "the condition names no field: expected at least one of the transaction's fields")
    numbers = frozenset(name for name in checker.used if checker.types[name] == NUMBER)
    return Condition(text, tuple(sorted(checker.used)), numbers, run)


_COMPARE = {ast.Eq: np.equal, ast.NotEq: np.not_equal, ast.Lt: np.less, ast.LtE: np.less_equal,
            ast.Gt: np.greater, ast.GtE: np.greater_equal}
_ARITHMETIC = {ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply, ast.Div: np.true_divide}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
           ast.In: "in", ast.NotIn: "not in", ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}


class _Compiler:
    """One pass over the tree: each allowed node becomes (type, evaluator); anything else is refused."""

    def __init__(self, types: dict[str, str], text: str):
        self.types, self.text, self.used = types, text, set()

    def fail(self, node: ast.AST, message: str) -> None:
        line, offset = getattr(node, "lineno", 1), getattr(node, "col_offset", 1)
        raise ConditionError(message, line=line, column=offset + (line != 1), text=self.text)  # less the "("

    def node(self, node: ast.AST, depth: int) -> tuple[str, Evaluate]:
        if depth > MAX_DEPTH:
            self.fail(node, f"nested deeper than {MAX_DEPTH} levels")
        handler = getattr(self, "_" + type(node).__name__, None)
        if handler is None:
            self.fail(node, f"{_describe(node)} is not allowed: expected a field, a literal, a comparison, "
                            "and/or/not, + - * / or `in (...)`")
        return handler(node, depth + 1)

    def _Name(self, node: ast.Name, depth: int) -> tuple[str, Evaluate]:
        kind = self.types.get(node.id)
        if kind is None:
            close = difflib.get_close_matches(node.id, list(self.types), n=1)
            self.fail(node, f"unknown field {node.id!r}: expected one of the transaction's fields or features"
                            + (f" (did you mean {close[0]!r}?)" if close else f" ({', '.join(sorted(self.types))})"))
        self.used.add(node.id)
        return kind, lambda column, name=node.id: column(name)

    def _Constant(self, node: ast.Constant, depth: int) -> tuple[str, Evaluate]:
        value = node.value
        if isinstance(value, bool):
            return BOOL, lambda column: value
        if isinstance(value, (int, float)):
            if not abs(value) <= MAX_NUMBER:  # also refuses nan and inf
                self.fail(node, f"number literal too large: at most {MAX_NUMBER:g} in magnitude")
            number = float(value)
            return NUMBER, lambda column: number
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                self.fail(node, f"string literal of {len(value):,} characters: at most {MAX_STRING}")
            return STRING, lambda column: value
        self.fail(node, f"{_describe(node)} is not allowed: expected a number, a string, True or False")

    def _BoolOp(self, node: ast.BoolOp, depth: int) -> tuple[str, Evaluate]:
        parts = [self.expect(value, BOOL, depth, "and/or") for value in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or

        def run(column):
            result = parts[0](column)
            for part in parts[1:]:
                result = combine(result, part(column))
            return result
        return BOOL, run

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> tuple[str, Evaluate]:
        if isinstance(node.op, ast.Not):
            inner = self.expect(node.operand, BOOL, depth, "not")
            return BOOL, lambda column: np.logical_not(inner(column))
        if isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = self.expect(node.operand, NUMBER, depth, "unary minus")
            return NUMBER, (lambda column: np.negative(inner(column))) if isinstance(node.op, ast.USub) else inner
        self.fail(node, f"{_describe(node)} is not allowed: expected not, or - before a number")

    def _BinOp(self, node: ast.BinOp, depth: int) -> tuple[str, Evaluate]:
        operation = _ARITHMETIC.get(type(node.op))
        if operation is None:
            self.fail(node, f"operator {type(node.op).__name__} is not allowed: expected + - * or /")
        symbol = _SYMBOL[type(node.op)]
        left = self.expect(node.left, NUMBER, depth, symbol)
        right = self.expect(node.right, NUMBER, depth, symbol)
        return NUMBER, lambda column: operation(left(column), right(column))

    def _Compare(self, node: ast.Compare, depth: int) -> tuple[str, Evaluate]:
        operands = [node.left, *node.comparators]
        tests = []
        left_kind, left = self.node(node.left, depth)
        for op, right_node, previous in zip(node.ops, node.comparators, operands):
            if isinstance(op, (ast.In, ast.NotIn)):
                test = self.membership(left_kind, left, right_node, negate=isinstance(op, ast.NotIn), depth=depth)
                left_kind, left = None, None  # `x in (..) < y` makes no sense: refused below
            else:
                if left_kind is None:
                    self.fail(right_node, "a comparison cannot follow `in (...)`: expected and/or")
                right_kind, right = self.node(right_node, depth)
                test = self.comparison(op, left_kind, left, right_kind, right, previous)
                left_kind, left = right_kind, right
            tests.append(test)

        def run(column):
            result = tests[0](column)
            for test in tests[1:]:
                result = np.logical_and(result, test(column))
            return result
        return BOOL, run

    def comparison(self, op: ast.cmpop, left_kind: str, left: Evaluate, right_kind: str, right: Evaluate,
                   at: ast.AST) -> Evaluate:
        symbol = _SYMBOL.get(type(op), type(op).__name__)
        if type(op) not in _COMPARE:
            self.fail(at, f"comparison {symbol} is not allowed: expected == != < <= > >= in or not in")
        if left_kind != right_kind:
            self.fail(at, f"{left_kind} {symbol} {right_kind}: expected both sides of the same type")
        if left_kind != NUMBER and not isinstance(op, (ast.Eq, ast.NotEq)):
            self.fail(at, f"{left_kind}s compare with == or != only, not {symbol}")
        compare = _COMPARE[type(op)]
        return lambda column: compare(left(column), right(column))

    def membership(self, kind: str | None, left: Evaluate | None, items: ast.AST, *, negate: bool,
                   depth: int) -> Evaluate:
        if kind is None or left is None:
            self.fail(items, "`in` cannot follow `in (...)`: expected and/or")
        if not isinstance(items, (ast.Tuple, ast.List, ast.Set)):
            self.fail(items, "`in` takes a literal list, e.g. terminal_id in (\"T1\", \"T2\")")
        if len(items.elts) > MAX_ITEMS:
            self.fail(items, f"a list of {len(items.elts):,} items: at most {MAX_ITEMS:,}")
        values = []
        for element in items.elts:
            if isinstance(element, ast.UnaryOp) and isinstance(element.op, ast.USub) \
                    and isinstance(element.operand, ast.Constant):
                element_kind, value = self.node(element, depth)
            elif isinstance(element, ast.Constant):
                element_kind, value = self.node(element, depth)
            else:
                self.fail(element, f"{_describe(element)} in a list: expected a literal")
            if element_kind != kind:
                self.fail(element, f"a {element_kind} in a list compared with a {kind}: expected {kind}s")
            values.append(value(lambda name: None))
        allowed = pd.Index(values)

        def run(column):
            found = allowed.get_indexer(pd.Index(np.atleast_1d(left(column)))) >= 0
            return ~found if negate else found
        return run

    def expect(self, node: ast.AST, kind: str, depth: int, where: str) -> Evaluate:
        found, run = self.node(node, depth)
        if found != kind:
            self.fail(node, f"a {found} in {where}: expected a {kind}")
        return run


def _describe(node: ast.AST) -> str:
    names = {ast.Attribute: "attribute access", ast.Call: "a function call", ast.Subscript: "a subscript",
             ast.Lambda: "a lambda", ast.NamedExpr: "an assignment", ast.JoinedStr: "an f-string",
             ast.ListComp: "a comprehension", ast.GeneratorExp: "a comprehension", ast.SetComp: "a comprehension",
             ast.DictComp: "a comprehension", ast.Dict: "a dict", ast.IfExp: "an if-expression",
             ast.Starred: "a starred expression", ast.Await: "await", ast.Yield: "yield"}
    if isinstance(node, ast.Constant):
        return f"a {type(node.value).__name__} literal"
    return names.get(type(node), type(node).__name__)
