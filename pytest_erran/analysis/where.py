"""`where` queries of buckets, parsed and evaluated without running any code.

A where is a boolean expression over the units table's columns. It is parsed with Python's
`ast`, and only these are allowed: column names (`` `a name` `` in backticks when it is not an
identifier), literals (numbers, strings, true/false as True/False, None), comparisons
(== != < <= > >=, chained), and/or/not and & | ~, arithmetic (+ - * / // % ** and unary -),
`in` / `not in` a literal list, and the methods in METHODS. Anything else (attributes, other
calls, subscripts, lambdas, names that are not columns) is refused before any data is read.

The tree is then evaluated node by node over pandas Series, never handed to `eval` (neither
Python's nor pandas'), so no where can import, call or reach anything but the columns. A config
is trusted like conftest.py, but a bucket query has no business doing more than that.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ErranError

COMPARISONS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
               ast.Gt: operator.gt, ast.GtE: operator.ge}
ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
              ast.Pow: operator.pow}
LOGIC = {ast.BitAnd: operator.and_, ast.BitOr: operator.or_}


@dataclass(frozen=True)
class Method:
    """A method a where may call: how many literal arguments it takes, and which keywords."""

    accessor: str | None  # "str" for col.str.<name>(...), None for col.<name>(...)
    args: tuple[int, int]  # fewest and most positional arguments
    keywords: tuple[str, ...] = ()
    boolean: bool = False  # gives true/false per row (NaN read as false)


METHODS = {
    "str.startswith": Method("str", (1, 1), boolean=True),
    "str.endswith": Method("str", (1, 1), boolean=True),
    "str.contains": Method("str", (1, 1), ("case", "regex"), boolean=True),
    "str.lower": Method("str", (0, 0)),
    "str.upper": Method("str", (0, 0)),
    "str.strip": Method("str", (0, 0)),
    "str.len": Method("str", (0, 0)),
    "isna": Method(None, (0, 0), boolean=True),
    "notna": Method(None, (0, 0), boolean=True),
    "between": Method(None, (2, 2), ("inclusive",), boolean=True),
    "abs": Method(None, (0, 0)),
}

ALLOWED = ("column names, literals, comparisons (== != < <= > >=, chained), and/or/not (& | ~), "
           "+ - * / // % **, in / not in [a literal list], and the methods "
           + ", ".join(f".{name}()" for name in METHODS))


class Refused(Exception):
    """A part of a where that is not allowed, or that cannot be evaluated."""


def parse(where: str) -> ast.Expression:
    """The checked tree of `where`; ErranError (without the bucket's name) if it is refused."""
    text, _ = _backticks(where)
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ErranError(f"not a valid expression ({e.msg}); {_hint()}") from None
    try:
        _check(tree.body, text)
    except Refused as e:
        raise ErranError(f"{e} is not allowed; a where may use {ALLOWED}") from None
    return tree


def evaluate(where: str, units: pd.DataFrame) -> np.ndarray:
    """The boolean mask `where` gives over the units (NaN counts as false)."""
    tree = parse(where)
    text, quoted = _backticks(where)
    usable = [c for c in units.columns if isinstance(c, str) and not c.startswith("_")]
    try:
        result = _Evaluator(units, quoted, usable).value(tree.body)
    except Refused as e:
        raise ErranError(f"{e}. Columns you can use: {', '.join(usable)}") from None
    except Exception as e:  # noqa: BLE001 - pandas raises many types for a bad comparison
        raise ErranError(f"cannot be evaluated: {e}. Columns you can use: {', '.join(usable)}") from None
    if not isinstance(result, pd.Series) or not pd.api.types.is_bool_dtype(result.dtype):
        raise ErranError(f"does not give true/false per row; write a condition, e.g. \"lighting == "
                         f"'low'\". Columns you can use: {', '.join(usable)}")
    return _bools(result).to_numpy(bool)


def _hint() -> str:
    return "write it like \"lighting == 'low' and camera in [1, 2]\""


def _backticks(where: str) -> tuple[str, dict[str, str]]:
    """`where` with each `quoted name` replaced by a placeholder identifier (pandas' syntax for
    column names that are not identifiers), and placeholder -> name. Quotes inside string
    literals are left alone."""
    out, names, i, quote = [], {}, 0, None
    while i < len(where):
        char = where[i]
        if quote:
            out.append(char)
            if char == "\\" and i + 1 < len(where):
                out.append(where[i + 1])
                i += 1
            elif char == quote:
                quote = None
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "`":
            end = where.find("`", i + 1)
            if end < 0:
                out.append(where[i:])  # left for the parser to refuse
                break
            placeholder = f"_backtick{len(names)}"
            names[placeholder] = where[i + 1:end]
            out.append(f" {placeholder} ")
            i = end
        else:
            out.append(char)
        i += 1
    return "".join(out), names


def _shown(node: ast.AST, text: str) -> str:
    return f"`{ast.get_source_segment(text, node) or type(node).__name__}`"


def _check(node: ast.AST, text: str) -> None:
    """Raise Refused for the first node that is not allowed (see the module doc)."""
    if isinstance(node, ast.Constant):
        if node.value is not None and not isinstance(node.value, (bool, int, float, str)):
            raise Refused(_shown(node, text))
    elif isinstance(node, ast.Name):
        if node.id.startswith("_") and not node.id.startswith("_backtick"):
            raise Refused(f"{_shown(node, text)} (a name of pytest-erran's own)")
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, text)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, (ast.Not, ast.Invert, ast.USub, ast.UAdd)):
            raise Refused(_shown(node, text))
        _check(node.operand, text)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in ARITHMETIC and type(node.op) not in LOGIC:
            raise Refused(f"the operator in {_shown(node, text)}")
        _check(node.left, text)
        _check(node.right, text)
    elif isinstance(node, ast.Compare):
        _check(node.left, text)
        for op, right in zip(node.ops, node.comparators):
            if isinstance(op, (ast.In, ast.NotIn)) or (isinstance(op, (ast.Eq, ast.NotEq))
                                                        and isinstance(right, (ast.List, ast.Tuple, ast.Set))):
                _literal_list(right, text)
            elif type(op) in COMPARISONS:
                _check(right, text)
            else:
                raise Refused(f"the comparison in {_shown(node, text)}")
    elif isinstance(node, ast.Call):
        _check_call(node, text)
    else:
        raise Refused(_shown(node, text))


def _literal_list(node: ast.AST, text: str) -> None:
    if not isinstance(node, (ast.List, ast.Tuple, ast.Set)) or not all(
            isinstance(e, ast.Constant) and isinstance(e.value, (bool, int, float, str, type(None)))
            for e in node.elts):
        raise Refused(f"{_shown(node, text)} after `in` (it takes a list of literals, like ['a', 'b'])")


def _method_of(call: ast.Call) -> tuple[str, ast.AST] | None:
    """("str.contains", the column expression) for col.str.contains(...), or None."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return None
    target = func.value
    if isinstance(target, ast.Attribute) and target.attr == "str":
        name, target = f"str.{func.attr}", target.value
    else:
        name = func.attr
    return (name, target) if name in METHODS else None


def _check_call(node: ast.Call, text: str) -> None:
    found = _method_of(node)
    if found is None:
        raise Refused(f"the call {_shown(node, text)}")
    name, target = found
    method = METHODS[name]
    low, high = method.args
    if not low <= len(node.args) <= high:
        raise Refused(f"{_shown(node, text)} ({name} takes {low if low == high else f'{low} to {high}'} "
                      "arguments)")
    for argument in node.args:
        if not _is_literal(argument):
            raise Refused(f"the argument {_shown(argument, text)} (arguments are literals)")
    for keyword in node.keywords:
        if keyword.arg not in method.keywords or not _is_literal(keyword.value):
            raise Refused(f"the keyword in {_shown(node, text)}")
    _check(target, text)


def _is_literal(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (bool, int, float, str))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and isinstance(node.operand.value, (int, float))
    if isinstance(node, ast.Tuple):  # str.startswith(("a", "b"))
        return all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts)
    return False


def _literal(node: ast.AST):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp):
        return -node.operand.value
    return tuple(e.value for e in node.elts)


class _Evaluator:
    """Evaluates a checked tree: each node becomes a pandas Series (one value per unit) or a
    Python scalar."""

    def __init__(self, units: pd.DataFrame, quoted: dict[str, str], usable: list[str]):
        self.units, self.quoted, self.usable = units, quoted, usable

    def value(self, node: ast.AST):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            name = self.quoted.get(node.id, node.id)
            if name not in self.usable:
                raise Refused(f"no column named '{name}'")
            return self.units[name]
        if isinstance(node, ast.BoolOp):
            combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
            values = [self.truth(v) for v in node.values]
            result = values[0]
            for value in values[1:]:
                result = combine(result, value)
            return result
        if isinstance(node, ast.UnaryOp):
            operand = self.value(node.operand)
            if isinstance(node.op, (ast.Not, ast.Invert)):
                truth = self.truth(node.operand, operand)
                return ~truth if isinstance(truth, pd.Series) else not truth
            return -operand if isinstance(node.op, ast.USub) else +operand
        if isinstance(node, ast.BinOp):
            if type(node.op) in LOGIC:
                return LOGIC[type(node.op)](self.truth(node.left), self.truth(node.right))
            return self.arithmetic(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        return self.call(node)

    def truth(self, node: ast.AST, value=None):
        """A true/false operand of and/or/not (& | ~): a boolean column or a boolean literal."""
        value = self.value(node) if value is None else value
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, pd.Series) and pd.api.types.is_bool_dtype(value.dtype):
            return _bools(value)
        raise Refused(f"and/or/not need true/false on each side, and `{ast.unparse(node)}` is not")

    def arithmetic(self, node: ast.BinOp):
        left, right = self.value(node.left), self.value(node.right)
        if isinstance(left, str) or isinstance(right, str):
            raise Refused(f"arithmetic on text in `{ast.unparse(node)}`")
        if not isinstance(left, pd.Series) and not isinstance(right, pd.Series):
            try:  # literals alone: in floats, so 9 ** 9 ** 9 overflows instead of running for hours
                return ARITHMETIC[type(node.op)](float(left), float(right))
            except (OverflowError, ZeroDivisionError, TypeError):
                raise Refused(f"`{ast.unparse(node)}` cannot be computed (too large, or a division "
                              "by zero)") from None
        return ARITHMETIC[type(node.op)](left, right)

    def compare(self, node: ast.Compare):
        result, left = None, self.value(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            if isinstance(right_node, (ast.List, ast.Tuple, ast.Set)):  # in, not in, == [..], != [..]
                choices = [e.value for e in right_node.elts]
                inside = left.isin(choices) if isinstance(left, pd.Series) else left in choices
                negate = isinstance(op, (ast.NotIn, ast.NotEq))
                part = (~inside if isinstance(inside, pd.Series) else not inside) if negate else inside
                right = None
            else:
                right = self.value(right_node)
                part = COMPARISONS[type(op)](left, right)
            result = part if result is None else result & part
            left = right
        return result

    def call(self, node: ast.Call):
        name, target = _method_of(node)
        column = self.value(target)
        if not isinstance(column, pd.Series):
            raise Refused(f"`{ast.unparse(node)}` calls {name} on a literal, not a column")
        method = METHODS[name]
        owner = column.str if method.accessor == "str" else column
        args = [_literal(a) for a in node.args]
        keywords = {k.arg: _literal(k.value) for k in node.keywords}
        result = getattr(owner, name.rpartition(".")[2])(*args, **keywords)
        return _bools(result) if method.boolean else result


def _bools(values: pd.Series) -> pd.Series:
    """True/false per row, a missing value (NaN, pandas' NA) being false as in a comparison."""
    return values.astype("boolean").fillna(False).astype(bool)
