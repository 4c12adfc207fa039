"""The one YAML reader of the project: PyYAML's SafeLoader with limits, so that a hostile or
damaged file (params.yaml, a preset, dvc.lock) gives one line naming the file, the key or line,
the value and what is allowed, never a traceback, a hang or a silently different meaning.

What is refused, on top of YAML syntax errors:

- bytes that are not UTF-8 text (a UTF-16/32 file, one Latin-1 byte), and files over ``MAX_BYTES``;
- an empty or comment-only file (where a mapping is expected);
- nesting deeper than ``MAX_DEPTH``; more than ``MAX_ALIASES`` aliases; an alias that refers to
  the node it is inside (a recursive structure); more than ``MAX_NODES`` nodes once aliases are
  expanded (the "billion laughs" alias bomb: a few lines that expand to millions of values);
- a key given twice in one mapping (PyYAML keeps the last one silently);
- integers of more than ``MAX_INT_DIGITS`` digits (a 400-digit integer overflows later);
- explicit tags other than the plain ones (``!!binary``, ``!!set``, ``!!python/...``): a
  params file holds strings, numbers, booleans, nulls, lists and mappings only. Dates such as
  ``2024-01-01`` stay strings (the implicit timestamp type is not resolved).

Cost: one pass over the text plus one memoised pass over the node graph, O(size of the file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20  # 1 MiB: params.yaml is ~10 kB; dvc.lock of a few hundred stages ~1 MB
MAX_DEPTH = 32
MAX_ALIASES = 256
MAX_NODES = 200_000
MAX_INT_DIGITS = 20  # 2**64 has 20 digits: every integer a params key allows fits

_PLAIN = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map",
                                               "merge")}


class YamlError(ValueError):
    """A YAML file is refused; the message is one line naming the file."""


def _where(name: str, path: list[str], mark: Any) -> str:
    key = ".".join(path)
    line = f"line {mark.line + 1}" if mark is not None else ""
    return f"{name}: {key} ({line})" if key else f"{name}: {line}"


class _Loader(yaml.SafeLoader):
    """SafeLoader + depth, alias and duplicate-key checks; ``_name`` is the file's name."""

    _name = "<yaml>"

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []
        self._aliases = 0
        self._depth = 0
        self._done: set[int] = set()

    def _fail(self, what: str, allowed: str, mark: Any) -> YamlError:
        return YamlError(f"{_where(self._name, self._path, mark)}: {what} is not allowed: "
                         f"{allowed}")

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise self._fail(f"alias *{event.anchor} (alias number {self._aliases})",
                                 f"at most {MAX_ALIASES} aliases in one file", event.start_mark)
            target = self.anchors.get(event.anchor)
            # PyYAML registers a collection's anchor before composing its children: an alias
            # to a collection that is not complete yet is inside it (a recursive structure)
            if isinstance(target, SequenceNode | MappingNode) and id(target) not in self._done:
                raise self._fail(f"alias *{event.anchor}", "an alias of a complete node (this "
                                 "one is inside the node it refers to: a recursive structure)",
                                 event.start_mark)
        pushed = isinstance(index, ScalarNode)
        if pushed:
            self._path.append(str(index.value))
        opens = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)
        self._depth += opens
        if self._depth > MAX_DEPTH:
            raise self._fail("nesting", f"at most {MAX_DEPTH} levels", self.peek_event().start_mark)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= opens
            if pushed:
                self._path.pop()
        if opens:
            self._done.add(id(node))
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise self._fail(f"key {key!r}", "a string, number or boolean key",
                                 key_node.start_mark) from None
            if key in seen:
                raise YamlError(f"{self._name}: key {'.'.join([*self._keys_of(node), str(key)])} "
                                f"(line {key_node.start_mark.line + 1}) given twice is not "
                                f"allowed: each key once per mapping (first on line "
                                f"{seen[key].line + 1})")
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def _keys_of(self, node: Node) -> list[str]:
        return self.__dict__.get("_node_paths", {}).get(id(node), [])

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(c.isdigit() for c in node.value)
        if digits > MAX_INT_DIGITS:
            raise YamlError(f"{self._name}: {'.'.join(self._keys_of(node)) or 'a value'} (line "
                            f"{node.start_mark.line + 1}) = {node.value[:24]}... ({digits} "
                            f"digits) is not allowed: an integer of at most {MAX_INT_DIGITS} "
                            "digits")
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# dates stay text: no implicit timestamp type (a params value is never a date)
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def _check_graph(root: Node, name: str) -> dict[int, list[str]]:
    """Every node's tag is plain and the alias-expanded size is at most MAX_NODES; returns each
    node's key path (for the messages of the constructor). Memoised: each node is visited once,
    its expanded size summed from its children's."""
    sizes: dict[int, int] = {}
    paths: dict[int, list[str]] = {}
    todo: list[tuple[Node, list[str], bool]] = [(root, [], False)]
    while todo:
        node, path, done = todo.pop()
        if done:
            children = _children(node)
            sizes[id(node)] = 1 + sum(sizes[id(c)] for _, c in children)
            if sizes[id(node)] > MAX_NODES:
                raise YamlError(f"{_where(name, path, node.start_mark)}: {sizes[id(node)]}+ "
                                f"values once aliases are expanded is not allowed: at most "
                                f"{MAX_NODES} (an alias bomb?)")
            continue
        if id(node) in sizes:
            continue
        paths.setdefault(id(node), path)
        if node.tag not in _PLAIN:
            raise YamlError(f"{_where(name, path, node.start_mark)}: tag {_short(node.tag)} is not "
                            "allowed: plain values only (strings, numbers, booleans, null, "
                            "lists, mappings)")
        todo.append((node, path, True))
        for key, child in _children(node):
            if id(child) not in sizes:
                todo.append((child, [*path, key] if key is not None else path, False))
    return paths


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org") else tag


def _children(node: Node) -> list[tuple[str | None, Node]]:
    if isinstance(node, SequenceNode):
        return [(None, c) for c in node.value]
    if isinstance(node, MappingNode):
        out: list[tuple[str | None, Node]] = []
        for k, v in node.value:
            out += [(None, k), (str(k.value) if isinstance(k, ScalarNode) else None, v)]
        return out
    return []


def decode(data: bytes, name: str) -> str:
    """``data`` as text, or one line: too large, UTF-16/32, or not UTF-8."""
    if len(data) > MAX_BYTES:
        raise YamlError(f"{name}: {len(data)} bytes is not allowed: at most {MAX_BYTES} bytes")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or data[:4] in (b"\x00\x00\xfe\xff",):
        raise YamlError(f"{name}: a UTF-16/UTF-32 file is not allowed: save it as UTF-8")
    if b"\x00" in data:
        raise YamlError(f"{name}: a NUL byte at offset {data.index(0)} is not allowed: the file "
                        "must be UTF-8 text (a UTF-16/UTF-32 or binary file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise YamlError(f"{name}: byte 0x{data[err.start]:02x} on line {line} is not allowed: "
                        "the file must be UTF-8 text (re-save it as UTF-8)") from None


def loads(text: str | bytes, name: str = "<yaml>", *, mapping: bool = True) -> Any:
    """Parse YAML ``text`` (the contents of ``name``) under the limits above. With ``mapping``,
    an empty or comment-only document, or one that is not a mapping, is refused."""
    if isinstance(text, bytes):
        text = decode(text, name)
    elif len(text) > MAX_BYTES:
        raise YamlError(f"{name}: {len(text)} characters is not allowed: at most {MAX_BYTES}")
    try:
        loader = type("Loader", (_Loader,), {"_name": name})(text)
    except yaml.YAMLError as err:  # a control character: the reader checks the whole text
        raise YamlError(f"{name}: not valid YAML ({' '.join(str(err).split())})") from None
    try:
        node = loader.get_single_node()
        if node is None:
            if mapping:
                raise YamlError(f"{name}: an empty file (or only comments) is not allowed: "
                                "a mapping of keys to values")
            return None
        loader.__dict__["_node_paths"] = _check_graph(node, name)
        value = loader.construct_document(node)
    except yaml.YAMLError as err:
        raise YamlError(f"{name}: not valid YAML ({' '.join(str(err).split())})") from None
    except RecursionError:  # a safety net: the depth limit is far below the interpreter's
        raise YamlError(f"{name}: nesting is not allowed: at most {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()
    if mapping and value is None:
        raise YamlError(f"{name}: an empty document is not allowed: a mapping of keys to values")
    if mapping and not isinstance(value, dict):
        raise YamlError(f"{name}: a {type(value).__name__} at the top is not allowed: a mapping "
                        "of keys to values")
    return value


def load(path: str | Path, *, mapping: bool = True) -> Any:
    """Read and parse the YAML file ``path`` (see :func:`loads`); a missing file is one line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise YamlError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise YamlError(f"{path}: a folder, not a YAML file") from None
    return loads(data, str(path), mapping=mapping)
