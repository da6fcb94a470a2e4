"""YAML files read strictly: UTF-8, unique keys, and every error as one ``file:line:column`` line.

PyYAML silently keeps the last of two equal keys and reports positions over several lines; a
config a person edits needs both fixed (:func:`read_yaml`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping.

    YAML 1.2 requires mapping keys to be unique; PyYAML would silently keep the last value.
    Keys brought in by a merge (``<<: *anchor``) may still be overridden explicitly.
    """

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=deep)
                try:
                    first = first_seen.setdefault(key, key_node.start_mark)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r} (first at line {first.line + 1})",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace, newlines included, as one space."""
    return " ".join(text.split())


def _yaml_error(path: Path, text: str, err: yaml.YAMLError) -> ValueError:
    """``file:line:column: <file> is not valid YAML: problem`` (1-based, as editors count)."""
    mark = getattr(err, "problem_mark", None)
    if isinstance(err, yaml.MarkedYAMLError) and mark is not None:
        problem = err.problem or "syntax error"
        if err.context:
            where = f" at line {err.context_mark.line + 1}" if err.context_mark else ""
            problem += f" ({err.context}{where})"
        line, column = mark.line + 1, mark.column + 1
    elif isinstance(err, yaml.reader.ReaderError):
        problem = str(err).splitlines()[0]
        line = text.count("\n", 0, err.position) + 1
        column = err.position - (text.rfind("\n", 0, err.position) + 1) + 1
    else:
        return ValueError(f"{path}: {path.name} is not valid YAML: {one_line(str(err))}")
    return ValueError(f"{path}:{line}:{column}: {path.name} is not valid YAML: "
                       f"{one_line(problem)}")


def _decode_error(path: Path, data: bytes, err: UnicodeDecodeError) -> ValueError:
    line = data.count(b"\n", 0, err.start) + 1
    column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
    return ValueError(f"{path}:{line}:{column}: {path.name} is not valid YAML: not UTF-8 text "
                       f"({err.reason})")


def read_yaml(path: str | Path) -> Any:
    """The document in the YAML file ``path``; a one-line ``ValueError`` (``file:line:column``)
    for bytes that are not UTF-8, a syntax error or a key repeated in one mapping."""
    path = Path(path)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _decode_error(path, data, err) from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as err:
        raise _yaml_error(path, text, err) from None
