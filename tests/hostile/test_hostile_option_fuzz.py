"""Option files (training, test and sweep) as a hostile user writes them, through the one loader (``esrgan.options``).

What must happen: any text, and any change to a valid file's values, gives typed options or one ``OptionsError``
naming the file and key; YAML's own hazards (alias bombs, deep nesting, duplicate keys, Python tags, other
encodings) are refused quickly and run nothing; a FIFO or folder named as the option file never blocks.
(NUL/BEL bytes in option files belong to another helper's scenarios.)
"""

from __future__ import annotations

import copy
import math
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import Arena
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inproc import call
from tiny_training import tiny_options_dict

from esrgan.options import OptionsError, load_options, options_from_dict
from esrgan.options.testing import load_test_options

pytestmark = pytest.mark.slow

TRAIN = tiny_options_dict("data", "experiments")
TEST = {"name": "probe", "scale": 4, "models": ["bicubic"],
        "datasets": {"test_1": {"name": "set", "dataroot_gt": "hr"}}}
LOADERS = {"train": lambda p: load_options(p), "test": lambda p: load_test_options(p)}


def _laughs(levels: int = 7) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


HOSTILE_TEXT: dict[str, bytes] = {
    "empty": b"",
    "comment-only": b"# nothing here\n",
    "top-level-list": b"- name: x\n",
    "top-level-scalar": b"42\n",
    "billion-laughs": _laughs().encode(),
    "deep-nesting": b"[" * 1200 + b"]" * 1200,
    "deep-mapping": b"".join(b"  " * i + b"k:\n" for i in range(400)) + b"  " * 400 + b"v: 1\n",
    "duplicate-keys": b"name: a\nscale: 4\nname: b\n",
    "python-object": b"!!python/object/apply:os.system ['touch pwned']\n",
    "python-name": b"name: !!python/name:os.system\n",
    "latin-1": "name: caf\u00e9\n".encode("latin-1"),
    "utf-16": "name: x\n".encode("utf-16"),
    "tabs": b"name:\tx\n\tscale: 4\n",
    "unclosed-quote": b"name: 'x\n",
    "long-key": b"k" * 2**18 + b": 1\n",
    "merge-into-root": b"base: &b {name: x}\n<<: *b\n",
    "binary-tag": b"name: !!binary aGVsbG8=\n",
    "timestamp": b"name: 2001-12-14t21:59:43.10-05:00\n",
    "set-tag": b"name: !!set {a, b}\n",
    "recursive-alias": b"a: &a [*a]\n",
}


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("kind", sorted(LOADERS))
@pytest.mark.parametrize("case", sorted(HOSTILE_TEXT))
def test_hostile_option_text_is_one_error(case: str, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    path = tmp_path / f"{case}.yml"
    path.write_bytes(HOSTILE_TEXT[case])
    os.chdir(tmp_path)  # a tag that ran would write here
    try:
        with pytest.raises(OptionsError) as err:
            LOADERS[kind](path)
    finally:
        os.chdir(Path(__file__).parent)
    assert path.name in str(err.value) and "\n" not in str(err.value), str(err.value)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("case", ["billion-laughs", "python-object", "latin-1", "duplicate-keys", "folder"])
def test_commands_give_one_line_for_a_hostile_option_file(arena: Arena, case: str) -> None:
    path = arena.work / "o.yml"
    if case == "folder":
        path.mkdir()
    else:
        path.write_bytes(HOSTILE_TEXT[case])
    for command in ("test", "interp"):
        result = call(arena, command, "-opt", "o.yml")
        result.assert_refused("o.yml")
    assert not (arena.work / "experiments").exists()


@pytest.mark.hostile("refused")
def test_fifo_as_option_file_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "o.yml"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            load_options(fifo)
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(3)
    blocked = worker.is_alive()
    if blocked:  # end the read so the thread finishes
        with open(fifo, "wb"):
            pass
        worker.join(5)
    assert not blocked, "load_options blocked on a FIFO"
    assert len(errors) == 1 and isinstance(errors[0], OptionsError)


# ---- huge and odd values in a valid file -----------------------------------------------------------------------

HUGE = 10**400


@pytest.mark.hostile("refused")
@pytest.mark.parametrize(("key", "value"), [
    ("train.total_iter", HUGE),
    ("datasets.train.batch_size_per_gpu", HUGE),
    ("datasets.train.gt_size", HUGE),
    ("train.optim_g.lr", 1e309),
    ("manual_seed", HUGE),
    ("num_gpu", HUGE),
    ("logger.print_freq", HUGE),
], ids=lambda v: v if isinstance(v, str) else "huge")
def test_huge_numbers_are_refused_at_load(key: str, value: Any) -> None:
    raw = copy.deepcopy(TRAIN)
    node = raw
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    with pytest.raises(OptionsError, match=key.split(".")[-1]):
        options_from_dict(raw, source="o.yml")


@pytest.mark.hostile("refused")
@pytest.mark.parametrize("key", ["network_g", "train.pixel_opt"])
def test_unhashable_type_is_one_error(key: str) -> None:
    raw = copy.deepcopy(TRAIN)
    node = raw
    for part in key.split("."):
        node = node[part]
    node["type"] = ["RRDBNet"]
    with pytest.raises(OptionsError, match="type"):
        options_from_dict(raw, source="o.yml")


# ---- property-based ---------------------------------------------------------------------------------------------

# YAML refuses C0/C1 control characters other than tab and newlines (yaml.reader.ReaderError): the NUL/BEL item of
# issue 19 is another helper's, with its own scenarios; the fuzz leaves those characters to them.
_YAML_TEXT = st.characters(blacklist_categories=("Cs",), blacklist_characters="".join(
    chr(c) for c in [*range(0, 9), 11, 12, *range(14, 32), 127, *range(128, 160), 0xFEFF, 0xFFFE, 0xFFFF]))
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(_YAML_TEXT, max_size=12),
    st.sampled_from(["", "..", "../../x", "auto", "cuda", "-1", "1e-4", "nan", "\u202e"]),
)
_values = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(_YAML_TEXT, max_size=8), inner,
                                                                         max_size=3)),
                       max_leaves=6)


def _paths(tree: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix] if prefix else []
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


def _mutated(base: dict, data: st.DataObject) -> dict:
    """``base`` with one to three values replaced (or keys added) anywhere in its tree."""
    raw = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(raw)))
        node: Any = raw
        for part in path[:-1]:
            node = node[part]
        if isinstance(node, dict) and data.draw(st.booleans()):
            node[data.draw(st.text(_YAML_TEXT, max_size=10))] = data.draw(_values)  # an extra key
        else:  # a list or mapping as a `type` is xfailed below (test_unhashable_type_is_one_error)
            node[path[-1]] = data.draw(_scalars if path[-1] == "type" else _values)
    return raw


@pytest.mark.hostile("refused")
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_training_options(data: st.DataObject) -> None:
    raw = _mutated(TRAIN, data)
    try:
        opt = options_from_dict(raw, source="fuzz.yml")
    except OptionsError as exc:
        assert "fuzz.yml" in str(exc)
        return
    _assert_sane(opt.to_dict())


def _assert_sane(tree: Any) -> None:
    """What loaded is what the trainer may use: finite numbers (no NaN/inf slipped through)."""
    if isinstance(tree, dict):
        for v in tree.values():
            _assert_sane(v)
    elif isinstance(tree, list | tuple):
        for v in tree:
            _assert_sane(v)
    elif isinstance(tree, float):
        assert math.isfinite(tree), tree


@pytest.mark.hostile("refused")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_test_options(tmp_path: Path, data: st.DataObject) -> None:
    path = tmp_path / "fuzz.yml"
    path.write_text(yaml.safe_dump(_mutated(TEST, data), allow_unicode=True))
    try:
        load_test_options(path)
    except OptionsError as exc:
        assert "fuzz.yml" in str(exc)


@pytest.mark.hostile("refused")
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(_YAML_TEXT, max_size=200), st.binary(max_size=200)))
def test_fuzz_option_text(tmp_path: Path, text: str | bytes) -> None:
    path = tmp_path / "fuzz.yml"
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    if isinstance(text, bytes) and any((b < 32 and b not in (9, 10, 13)) or b == 127 for b in data):
        return  # control bytes: the NUL/BEL item's scenarios (another helper's)
    path.write_bytes(data)
    for loader in LOADERS.values():
        try:
            loader(path)
        except OptionsError as exc:
            assert "fuzz.yml" in str(exc)


@pytest.mark.hostile("refused")
@settings(max_examples=120, deadline=None)
@given(overrides=st.lists(st.text(_YAML_TEXT, max_size=30), min_size=1, max_size=3))
def test_fuzz_set_overrides(overrides: list[str]) -> None:
    """``--set KEY.PATH=VALUE`` strings from a hostile command line."""
    try:
        opt = options_from_dict(copy.deepcopy(TRAIN), overrides, source="o.yml")
    except OptionsError:
        return
    _assert_sane(opt.to_dict())
