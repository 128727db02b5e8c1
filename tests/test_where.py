"""`where` is parsed and evaluated by pytest-erran's own evaluator, never as code: what it
allows gives the rows pandas' own query gives, and everything else is refused before any data
is read, with a message naming what is allowed."""

import numpy as np
import pandas as pd
import pytest

from pytest_erran.analysis import where
from pytest_erran.errors import ErranError

UNITS = pd.DataFrame({
    "lighting": ["low", "normal", None, "low", "dim"],
    "camera": [1.0, 2.0, 3.0, np.nan, 2.0],
    "width mm": [1.5, 2.0, 3.5, 4.0, 0.5],
    "part": ["tube-1", "fin-2", "tube-3", None, "Tube-4"],
    "label": ["scratch", "dent", "ok", "dent", "scratch"],
    "_hit": [True, False, True, False, True],
})

# (where, the same question as pandas.DataFrame.query answers it, or as numpy computes it)
AGREES_WITH_PANDAS = [
    "lighting == 'low'",
    "lighting != 'low'",
    "camera >= 2",
    "1 <= camera < 3",
    "camera in [1, 3]",
    "camera not in [1, 3]",
    "lighting == 'low' and camera == 1",
    "lighting == 'low' or camera > 2",
    "(lighting == 'low') & (camera == 1) | (label == 'dent')",
    "~(lighting == 'low')",
    "not lighting == 'low'",
    "camera * 2 - 1 > 2",
    "camera / 2 <= 1",
    "camera % 2 == 0",
    "camera ** 2 > 3",
    "-camera < -1.5",
    "`width mm` > 1.8",
    "label in ('dent', 'ok')",
]


@pytest.mark.parametrize("expression", AGREES_WITH_PANDAS)
def test_allowed_expressions_give_what_pandas_query_gives(expression):
    public = UNITS.drop(columns="_hit")
    expected = public.eval(expression, engine="python").fillna(False).to_numpy(bool)
    assert where.evaluate(expression, UNITS).tolist() == expected.tolist()


@pytest.mark.parametrize("expression, expected", [
    ("part.str.startswith('tube')", [True, False, True, False, False]),
    ("part.str.startswith(('tube', 'Tube'))", [True, False, True, False, True]),
    ("part.str.endswith('-2')", [False, True, False, False, False]),
    ("part.str.contains('ube')", [True, False, True, False, True]),
    ("part.str.contains('TUBE', case=False)", [True, False, True, False, True]),
    ("part.str.lower().str.startswith('tube')", [True, False, True, False, True]),
    ("part.str.len() == 6", [True, False, True, False, True]),  # "fin-2" has 5
    ("camera.isna()", [False, False, False, True, False]),
    ("camera.notna() and lighting.isna()", [False, False, True, False, False]),
    ("camera.between(2, 3)", [False, True, True, False, True]),
    ("camera.between(2, 3, inclusive='left')", [False, True, False, False, True]),
    ("(camera - 2).abs() < 0.5", [False, True, False, False, True]),
    ("lighting == ['low', 'dim']", [True, False, False, True, True]),  # pandas' "is one of"
    ("lighting != ['low', 'dim']", [False, True, True, False, False]),
])
def test_methods_counted_by_hand(expression, expected):
    assert where.evaluate(expression, UNITS).tolist() == expected


@pytest.mark.parametrize("expression, refused", [
    ("__import__('os').system('touch pwned')", "the call `__import__('os').system('touch pwned')`"),
    ("lighting.__class__.__mro__[-1].__subclasses__()", "the call"),
    ("camera.apply(print)", "the call `camera.apply(print)`"),
    ("lighting.str.cat('x') == 'a'", "the call `lighting.str.cat('x')`"),
    ("camera.values", "`camera.values`"),
    ("camera[0] > 1", "`camera[0]`"),
    ("[c for c in camera]", "`[c for c in camera]`"),
    ("(lambda: 1)()", "the call"),
    ("f'{camera}' == '1'", "`f'{camera}'`"),
    ("camera if True else camera", "`camera if True else camera`"),
    ("(x := 1) == 1", "`x := 1`"),
    ("camera in lighting", "`lighting` after `in`"),
    ("camera in [1, label]", "`[1, label]` after `in`"),
    ("camera.between(label, 3)", "the argument `label`"),
    ("camera.between(1, 2, foo=3)", "the keyword"),
    ("camera.isna(1)", "isna takes 0 arguments"),
    ("_hit == True", "`_hit` (a name of pytest-erran's own)"),
    ("camera @ camera", "the operator in `camera @ camera`"),
    ("camera is None", "the comparison in `camera is None`"),
    ("b'x' == lighting", "`b'x'`"),
])
def test_everything_else_is_refused_before_any_data_is_read(expression, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ErranError) as error:
        where.parse(expression)  # no units: nothing is looked up, let alone called
    message = str(error.value)
    assert refused in message and "is not allowed; a where may use column names, literals" in message
    assert ".str.startswith()" in message and ".between()" in message
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("expression, says", [
    ("lightning == 'low'", "no column named 'lightning'. Columns you can use: lighting, camera, width mm"),
    ("camera", "does not give true/false per row"),
    ("1 == 1", "does not give true/false per row"),
    ("camera and lighting == 'low'", "and/or/not need true/false on each side, and `camera` is not"),
    ("'a' * 10 ** 9 == lighting", "arithmetic on text"),
    ("9 ** 9 ** 9 < camera", "cannot be computed (too large"),
    ("camera > 'x'", "cannot be evaluated"),
    ("lighting ==", "not a valid expression"),
    ("`width mm > 1", "not a valid expression"),
])
def test_mistakes_say_what_is_wrong(expression, says):
    with pytest.raises(ErranError, match=None) as error:
        where.evaluate(expression, UNITS)
    assert says in str(error.value)
    assert "_hit" not in str(error.value)  # erran's own columns are not offered


def test_backticks_inside_a_string_are_text():
    units = pd.DataFrame({"note": ["a`b`", "c"], "x y": [1, 2]})
    assert where.evaluate("note == 'a`b`' or `x y` == 2", units).tolist() == [True, True]


def test_the_bucket_is_named_in_a_run(project):
    from conftest import rows_with_misses, usage_error

    project.model()
    project.data(rows_with_misses(n=6))
    project.config("""
    [buckets.bad]
    where = "lighting.__class__ == 1"
    [[require]]
    bucket = "scratch"
    recall = 0.1
    """)
    usage_error(project.run(), "erran.toml: [buckets.bad] where = 'lighting.__class__ == 1': "
                "`lighting.__class__` is not allowed; a where may use column names")
