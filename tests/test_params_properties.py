"""Generated bad params files (hypothesis, fixed seed, bounded examples): whatever key is broken
and however, a stage stops before its work with exit code 2 and ONE line naming that key, and
writes nothing; ``coreset check`` prints the same line. The hand-written corpus is
tests/test_bad_params.py; this covers the classes behind it."""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coreset import check
from coreset.stages import _cli

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())
FAST = settings(derandomize=True, max_examples=30, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def leaves(tree: dict, prefix: tuple = ()) -> list[tuple[tuple, object]]:
    out = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out += leaves(value, (*prefix, key))
        else:
            out.append(((*prefix, key), value))
    return out


LEAVES = leaves(DEFAULT)
# free-text keys: any non-empty string is allowed there
TEXT = {("data", "root")}
# keys whose values are numbers with an upper bound (selector parameters may be unbounded)
BOUNDED = [k for k, v in LEAVES if k[0] != "recipes" and isinstance(v, int | float)
           and not isinstance(v, bool)]


def wrong_type(default: object) -> st.SearchStrategy:
    """Values whose TYPE the key cannot take, given its default value."""
    texts = st.text("abcxyz_-", min_size=1, max_size=8)
    containers = st.one_of(st.just([]), st.just({}), st.lists(st.integers(), min_size=1,
                                                               max_size=3),
                           st.dictionaries(texts, st.integers(), min_size=1, max_size=2))
    if isinstance(default, bool):
        return st.one_of(st.integers(0, 1), texts, st.none(), containers)
    if isinstance(default, int):
        return st.one_of(st.booleans(), texts, st.none(), containers,
                         st.floats(allow_nan=True).filter(lambda f: not float(f).is_integer()))
    if isinstance(default, float):
        return st.one_of(st.booleans(), texts, st.none(), containers,
                         st.sampled_from([math.nan, math.inf, -math.inf]))
    if isinstance(default, str):
        return st.one_of(st.integers(), st.booleans(), st.none(), containers)
    if isinstance(default, list):
        return st.one_of(st.integers(), texts, st.none(), st.just({"a": 1}), st.just([None]),
                         st.just([[1]]))
    if isinstance(default, dict):  # an empty params mapping of a recipe
        return st.one_of(st.integers(), texts, st.lists(st.integers(), min_size=1))
    raise AssertionError(default)


def set_key(tree: dict, path: tuple, value: object) -> dict:
    tree = copy.deepcopy(tree)
    node = tree
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return tree


def refuses(tmp: Path, monkeypatch, capsys, tree: dict) -> str:
    """Run the download stage's plumbing on ``tree``: it must stop with exit 2 and one line,
    having written nothing; then `coreset check` must print the same line."""
    (tmp / "params.yaml").write_text(yaml.safe_dump(tree, allow_unicode=True))
    monkeypatch.chdir(tmp)
    monkeypatch.setattr(sys, "argv", ["download"])

    def main(p, argv):
        raise AssertionError("the stage ran past the check")

    with pytest.raises(SystemExit) as stop:
        _cli.run(main, _cli.no_args("data/raw"))
    assert stop.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert check.main([]) == 2
    assert capsys.readouterr().err.strip() == lines[0]
    assert [p.name for p in tmp.iterdir()] == ["params.yaml"]
    return lines[0]


def names(line: str, path: tuple) -> bool:
    key = ".".join(map(str, path))
    return line.startswith(f"error: params.yaml: {key} ") or \
        line.startswith(f"error: params.yaml: {key}.")


@FAST
@given(st.data())
def test_any_key_of_a_wrong_type_is_refused_naming_it(tmp_path, monkeypatch, capsys, data):
    path, default = data.draw(st.sampled_from([kv for kv in LEAVES if kv[0] not in TEXT]))
    value = data.draw(wrong_type(default))
    line = refuses(tmp_path, monkeypatch, capsys, set_key(DEFAULT, path, value))
    assert names(line, path), (path, value, line)
    assert "is not allowed" in line


@FAST
@given(st.data())
def test_any_number_far_out_of_range_is_refused_naming_it(tmp_path, monkeypatch, capsys, data):
    """Every numeric key has an upper bound: an absurd value (a petabyte allocation, a run that
    never ends) is refused with its bound, not attempted."""
    path = data.draw(st.sampled_from(BOUNDED))
    value = data.draw(st.one_of(st.integers(2**32, 10**19), st.integers(-10**19, -1),
                                st.floats(1e12, 1e300)))
    line = refuses(tmp_path, monkeypatch, capsys, set_key(DEFAULT, path, value))
    assert names(line, path), (path, value, line)


@FAST
@given(st.data())
def test_a_missing_key_is_refused_naming_it(tmp_path, monkeypatch, capsys, data):
    # (a selector or window parameter that is left out takes the method's / window's default)
    path, _ = data.draw(st.sampled_from([kv for kv in LEAVES if kv[0][2:3] not in
                                         (("params",), ("window_params",))]))
    tree = copy.deepcopy(DEFAULT)
    node = tree
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    line = refuses(tmp_path, monkeypatch, capsys, tree)
    key = ".".join(path)
    assert line.startswith(f"error: params.yaml: {key} is missing"), line


@FAST
@given(st.data())
def test_an_unknown_key_anywhere_is_refused_naming_it(tmp_path, monkeypatch, capsys, data):
    sections = [(), *sorted({k[:i] for k, _ in LEAVES for i in range(1, len(k))})]
    where = data.draw(st.sampled_from(sections))
    name = data.draw(st.text("qwvz", min_size=3, max_size=6))
    tree = copy.deepcopy(DEFAULT)
    node = tree
    for part in where:
        node = node[part]
    if where[:1] == ("recipes",) and len(where) == 1:
        node[name] = {"method": "random", "window": "top", "balance": True, "params": {},
                      "bogus": 1}
        where, name = (*where, name), "bogus"
    else:
        node[name] = 1
    line = refuses(tmp_path, monkeypatch, capsys, tree)
    assert names(line, (*where, name)), line


@FAST
@given(st.sampled_from(sorted(DEFAULT)), st.data())
def test_a_key_given_twice_in_the_file_is_refused(tmp_path, monkeypatch, capsys, key, data):
    text = yaml.safe_dump(DEFAULT) + yaml.safe_dump({key: DEFAULT[key]})
    (tmp_path / "params.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert check.main([]) == 2
    line = capsys.readouterr().err.strip()
    assert line.startswith(f"error: params.yaml: key {key} ") and "twice" in line, line
