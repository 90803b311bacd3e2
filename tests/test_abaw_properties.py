"""Property tests: random (often malformed) annotation bytes against the ABAW parser.

Every input must end in an ``InputError`` naming the same line as an independent, deliberately
naive reference written here, or in exactly the reference's values: never another exception,
never a dropped or invented line. The parser's own fast path and line-by-line path are also
checked against each other.
"""

from __future__ import annotations

import re

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from wildaffect.data.abaw import _parse_fast, parse_annotation_bytes, parse_annotation_reference
from wildaffect.errors import InputError
from wildaffect.labels import EXPR_NAMES, TASK_SPECS, Task

SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
NUMBER_CHARS = set("0123456789+-.eE")


def naive_reference(data: bytes, task: Task):
    """``("error", line)`` or ``("ok", numbers (T, C) float64)``, one obvious step at a time."""
    if data[:3] == b"\xef\xbb\xbf":
        data = data[3:]
    lines = re.split(rb"\r\n|\r|\n", data)
    while lines and lines[-1].strip(b" \t") == b"":
        lines.pop()
    if not lines:
        return "error", None
    width = 1 if task is Task.EXPR else len(TASK_SPECS[task].columns)
    rows = []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return "error", number
        if number == 1:
            names = [name.strip(" \t").lower() for name in text.split(",")]
            if names != [name.lower() for name in TASK_SPECS[task].columns]:
                return "error", 1
            continue
        cells = text.split(",")
        if text.strip(" \t") == "" or len(cells) != width:
            return "error", number
        row = []
        for cell in cells:
            token = cell.strip(" \t")
            if not token or not set(token) <= NUMBER_CHARS:
                return "error", number
            try:
                value = float(token)
            except ValueError:
                return "error", number
            allowed = {
                Task.AU: value in (0.0, 1.0, -1.0),
                Task.EXPR: value in [float(c) for c in range(-1, len(EXPR_NAMES))],
                Task.VA: -1.0 <= value <= 1.0 or value == -5.0,
            }[task]
            if not allowed:
                return "error", number
            row.append(value)
        rows.append(row)
    if not rows:
        return "error", 1  # header only
    return "ok", np.array(rows, dtype=np.float64)


def check_against_reference(data: bytes, task: Task) -> None:
    expected = naive_reference(data, task)
    event(f"reference: {expected[0]}")
    try:
        values, valid = parse_annotation_bytes(data, task, "random.txt")
    except InputError as err:
        assert expected[0] == "error", f"rejected a valid file: {err}"
        assert err.line == expected[1], f"{err} but the reference says line {expected[1]}"
        assert _parse_fast(data, task) is None
        return
    assert expected[0] == "ok", f"accepted a file the reference rejects at line {expected[1]}"
    numbers = expected[1]
    if task is Task.EXPR:
        np.testing.assert_array_equal(values, numbers[:, 0].astype(np.int64))
        np.testing.assert_array_equal(valid, numbers[:, 0] != -1)
    else:
        np.testing.assert_array_equal(values, numbers.astype(np.float32))
        np.testing.assert_array_equal(valid, numbers != TASK_SPECS[task].invalid)
    ref_values, ref_valid = parse_annotation_reference(data, task)
    np.testing.assert_array_equal(values, ref_values)
    np.testing.assert_array_equal(valid, ref_valid)


# ------------------------------------------------------------------ strategies


PADS = ("", " ", "\t", "  ")


def good_cells(task: Task) -> st.SearchStrategy[str]:
    """One draw per cell: valid spellings, already padded with spaces or tabs."""
    spellings = {
        Task.AU: ["0", "1", "-1", "1.0", "0.0", "-1.0", "+1", "1e0"],
        Task.EXPR: [str(c) for c in range(-1, len(EXPR_NAMES))] + ["3.0", "-1.0", "7.", "0e1"],
        Task.VA: ["-5", "-5.0", "-5.00", "1", "-1", ".5", "-.25", "1e-3", "0.123", "-0.999"],
    }[task]
    padded = st.sampled_from([a + cell + b for cell in spellings for a in PADS for b in PADS[:2]])
    if task is Task.VA:
        return padded | st.floats(-1, 1).map(repr)
    return padded


OUT_OF_DOMAIN = {  # well-formed numbers the task does not allow
    Task.AU: ["2", "0.5", "-5", "-2", "1.5", "1e1"],
    Task.EXPR: ["8", "3.5", "-5", "-2", "10", "0.1"],
    Task.VA: ["1.1", "-1.5", "-5.5", "2", "-4.99", "1.0000001"],
}
MALFORMED_CELLS = st.sampled_from([
    "", "nan", "NaN", "inf", "-inf", "1e400", "abc", "1_0", "0x1", '"1"', "1..0", "--1", "e5",
    ".", "-", "1e", "\u0663", "1 0", "\x00",
])


def bad_cells(task: Task) -> st.SearchStrategy[str]:
    choices = [st.sampled_from(OUT_OF_DOMAIN[task]), MALFORMED_CELLS, st.text(max_size=3)]
    return st.integers(0, 2).flatmap(lambda pick: choices[pick])


def good_row(task: Task) -> st.SearchStrategy[str]:
    width = 1 if task is Task.EXPR else len(TASK_SPECS[task].columns)
    return st.lists(good_cells(task), min_size=width, max_size=width).map(",".join)


@st.composite
def bad_row(draw, task: Task) -> str:
    """A frame line with one defect: a bad cell, a wrong count, or blank."""
    cells = draw(good_row(task)).split(",")
    defect = draw(st.sampled_from(["cell", "cell", "more", "fewer", "blank"]))
    if defect == "cell":
        cells[draw(st.integers(0, len(cells) - 1))] = draw(bad_cells(task))
    elif defect == "more":
        cells.append(draw(good_cells(task)))
    elif defect == "fewer":
        cells = cells[:-1] if len(cells) > 1 else []
    else:
        cells = [draw(st.sampled_from(["", " ", "\t "]))]
    return ",".join(cells)


def headers(task: Task) -> st.SearchStrategy[str]:
    names = TASK_SPECS[task].columns
    good = st.sampled_from([",".join(names), ",".join(n.upper() for n in names),
                            " , ".join(names), "\t" + ",".join(names) + " "])
    bad = st.sampled_from([
        ",".join(names[::-1]), ",".join(names[:-1]), ",".join(names) + ",",
        TASK_SPECS[Task.VA if task is not Task.VA else Task.AU].header, "",
    ]) | st.text(max_size=20)
    # hypothesis's one_of() merges repeated branches, so weight by drawing a number instead
    return st.integers(0, 5).flatmap(lambda pick: bad if pick == 0 else good)


@st.composite
def annotation_bytes(draw, task: Task) -> bytes:
    """Mostly well-formed files with zero to two defects, in any of the real-world encodings."""
    lines = [draw(headers(task))]
    lines += draw(st.lists(good_row(task), max_size=8))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        lines.insert(draw(st.integers(1, len(lines))), draw(bad_row(task)))
    ending = draw(st.sampled_from(["\n", "\r\n", "\r", "mixed"]))
    if ending == "mixed":
        text = "".join(line + draw(st.sampled_from(["\n", "\r\n", "\r"])) for line in lines)
    else:
        text = ending.join(lines) + ending
    if draw(st.booleans()):
        text = text.rstrip("\r\n")  # no final newline
    data = text.encode("utf-8")
    if draw(st.integers(0, 5)) == 0:
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 8)) == 0:  # random bytes (invalid UTF-8 among them) spliced in
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=3)) + data[at:]
    if draw(st.integers(0, 8)) == 0:
        data += draw(st.sampled_from([b"\n\n", b"\r\n \r\n", b"\n\t"]))  # trailing blanks
    return data


# ------------------------------------------------------------------ properties


@SETTINGS
@given(data=annotation_bytes(Task.AU))
def test_au_parse_matches_reference(data):
    check_against_reference(data, Task.AU)


@SETTINGS
@given(data=annotation_bytes(Task.EXPR))
def test_expr_parse_matches_reference(data):
    check_against_reference(data, Task.EXPR)


@SETTINGS
@given(data=annotation_bytes(Task.VA))
def test_va_parse_matches_reference(data):
    check_against_reference(data, Task.VA)


@SETTINGS
@given(data=st.binary(max_size=64), task=st.sampled_from(list(Task)))
def test_random_bytes_never_crash(data, task):
    check_against_reference(data, task)


@SETTINGS
@given(
    rows=st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1)), min_size=1, max_size=40),
    ending=st.sampled_from(["\n", "\r\n", "\r"]),
)
def test_valid_va_files_take_the_fast_path(rows, ending):
    data = ("valence,arousal" + ending + ending.join(f"{a!r},{b!r}" for a, b in rows)).encode()
    fast = _parse_fast(data, Task.VA)
    assert fast is not None
    np.testing.assert_array_equal(fast[0], np.float32(rows))
    np.testing.assert_array_equal(fast[0], parse_annotation_reference(data, Task.VA)[0])
