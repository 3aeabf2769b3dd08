"""Reading option files: one YAML loader for training, test and sweep files, and ``--set`` overrides.

The loader is PyYAML's safe loader plus: ``1e-4`` is a float (YAML 1.2; PyYAML reads a string),
duplicate keys are errors, and aliases that expand beyond a sane size are refused at once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from esrgan.options.errors import OptionsError, _show


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-4 as a float (YAML 1.2) and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)(?:\.[\d_]*)?[eE][-+]?\d+$"),
    list("-+0123456789"),
)


# Values an option file may expand to once aliases are followed. Real option files hold a few hundred;
# an "alias bomb" (each anchor aliasing the previous one several times) expands exponentially.
MAX_EXPANDED_VALUES = 100_000
# Larger than any option file: refused before it is read.
MAX_OPTION_FILE_BYTES = 1 << 20


def _expanded_size(root: yaml.Node, limit: int) -> int:
    """Number of values ``root`` stands for with every alias expanded, counted without expanding anything.

    Aliases are shared node objects in PyYAML's graph, so sizes are memoised by node identity; the
    count stops as soon as it passes ``limit``.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes being counted: meeting one again is an alias to an enclosing node

    def size(node: yaml.Node) -> int:
        if id(node) in open_nodes:
            mark = node.start_mark
            raise OptionsError(f"invalid YAML at line {mark.line + 1}: a recursive alias (a value that contains "
                               "itself); an option file holds plain values")
        known = sizes.get(id(node))
        if known is not None:
            return known
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        else:
            children = []
        for child in children:
            total += size(child)
            if total > limit:
                break
        open_nodes.discard(id(node))
        sizes[id(node)] = total
        return total

    return size(root)


def parse_yaml(text: str, name: str = "<string>") -> Any:
    """Parse YAML text with the option loader; every problem is an OptionsError naming ``name`` (and the line)."""
    try:
        loader = _Loader(text)  # the reader refuses control characters (NUL, BEL, ...) here, before parsing
    except yaml.reader.ReaderError as exc:
        raise OptionsError(_control_character(text, exc), file=name) from None
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            expanded = _expanded_size(node, MAX_EXPANDED_VALUES)
        except OptionsError as err:
            raise err.with_file(name) from None
        if expanded > MAX_EXPANDED_VALUES:
            raise OptionsError(
                f"YAML aliases expand to more than {MAX_EXPANDED_VALUES:,} values (an alias bomb?); "
                "an option file needs a few hundred",
                file=name,
            )
        return loader.construct_document(node)
    except yaml.reader.ReaderError as exc:
        raise OptionsError(_control_character(text, exc), file=name) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise OptionsError(f"invalid YAML{where}: {what}", file=name) from None
    except yaml.YAMLError as exc:
        raise OptionsError(f"invalid YAML: {exc}", file=name) from None
    except RecursionError:
        raise OptionsError("invalid YAML: nested too deeply (a recursive alias?)", file=name) from None
    finally:
        loader.dispose()


def _control_character(text: str, exc: yaml.reader.ReaderError) -> str:
    """Where the byte YAML refuses is: an option file is plain text."""
    pos = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = exc.character
    code = ord(char) if isinstance(char, str) else int(char)
    return (f"control character 0x{code:02x} at line {line}, column {column}: not allowed in YAML; an option file is "
            "plain text (was it saved by a word processor, or is it not the option file?)")


def read_option_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse an option file (training, test or sweep); every problem is one OptionsError line."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO or a device would block or never end
            raise OptionsError("is not a regular file (a pipe or a device?); give the option file itself", file=path)
        if path.is_file() and path.stat().st_size > MAX_OPTION_FILE_BYTES:
            raise OptionsError(f"is {path.stat().st_size:,} bytes; an option file is a few kB (at most "
                               f"{MAX_OPTION_FILE_BYTES:,} bytes): is this the option file?", file=path)
        data = path.read_bytes()
    except FileNotFoundError:
        raise OptionsError("option file not found", file=path) from None
    except IsADirectoryError:
        raise OptionsError("is a folder, not an option file", file=path) from None
    except OSError as exc:
        raise OptionsError(f"cannot read option file ({exc.strerror or exc})", file=path) from None
    try:
        text = data.decode("utf-8-sig")  # a BOM from Windows editors is fine
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise OptionsError(
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at line {line}); save the option file as UTF-8",
            file=path,
        ) from None
    return parse_yaml(text, str(path))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.optim_g.lr=1e-4"`` -> (["train", "optim_g", "lr"], 1e-4); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(p.strip() for p in parts):
        raise OptionsError(f"override {text!r}: expected KEY.PATH=VALUE, e.g. train.optim_g.lr=1e-4", file="--set")
    try:
        value = parse_yaml(raw.strip()) if raw.strip() else None
    except OptionsError as exc:
        raise OptionsError(f"override {text!r}: value is not valid YAML ({exc.reason})", file="--set") from None
    return [p.strip() for p in parts], value


def apply_override(raw: dict[str, Any], text: str) -> None:
    """Set one ``a.b.c=value`` in the raw option dict, creating missing sections (validated later)."""
    parts, value = parse_override(text)
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise OptionsError(f"override {text!r}: {where} is {_show(child)}, not a section", file="--set")
        node = child
    node[parts[-1]] = value

