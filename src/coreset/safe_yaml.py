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


_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: ~20x faster


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """SafeLoader (libyaml's parser when present) + duplicate-key and integer-size checks;
    ``_name`` is the file's name, ``_paths`` each node's key path (from :func:`_check_graph`)."""

    _name = "<yaml>"

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._paths: dict[int, list[str]] = {}

    def _key(self, node: Node, extra: str | None = None) -> str:
        path = [*self._paths.get(id(node), []), *([extra] if extra is not None else [])]
        return ".".join(path) or "a value"

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                raise YamlError(f"{self._name}: {self._key(node)} (line "
                                f"{key_node.start_mark.line + 1}): a {type(key).__name__} key is "
                                "not allowed: a string, number or boolean key") from None
            if key in seen:
                raise YamlError(f"{self._name}: key {self._key(node, str(key))} (line "
                                f"{key_node.start_mark.line + 1}) given twice is not allowed: "
                                f"each key once per mapping (first on line {seen[key] + 1})")
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        digits = sum(c.isdigit() for c in node.value)
        if digits > MAX_INT_DIGITS:
            raise YamlError(f"{self._name}: {self._key(node)} (line {node.start_mark.line + 1}) "
                            f"= {node.value[:24]}... ({digits} digits) is not allowed: an "
                            f"integer of at most {MAX_INT_DIGITS} digits")
        return super().construct_yaml_int(node)


def _scan_events(text: str, name: str) -> None:
    """One pass over the parser's events (libyaml: iterative, no deep recursion): the nesting
    depth, the number of aliases, recursive aliases and explicit tags, before any node is
    composed (a composer recurses once per level)."""
    stack: list[list] = []  # per open collection: [is_mapping, expecting_key, key, anchor]
    aliases = 0

    def where(mark: Any) -> str:
        keys = [str(f[2]) for f in stack if f[0] and f[2] is not None]
        return _where(name, keys, mark)

    def value_done() -> None:
        if stack and stack[-1][0]:
            top = stack[-1]
            top[1] = not top[1]
            if top[1]:
                top[2] = None

    for event in yaml.parse(text, Loader=_Base):
        if isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise YamlError(f"{where(event.start_mark)}: alias *{event.anchor} (alias number "
                                f"{aliases}) is not allowed: at most {MAX_ALIASES} aliases in one "
                                "file")
            if any(f[3] == event.anchor for f in stack):
                raise YamlError(f"{where(event.start_mark)}: alias *{event.anchor} is not "
                                "allowed: an alias of a complete node (this one is inside the node "
                                "it refers to: a recursive structure)")
            value_done()
        elif isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent):
            if stack and stack[-1][0] and stack[-1][1] and isinstance(event, yaml.ScalarEvent):
                stack[-1][2] = event.value
            tag = event.tag
            if tag is not None and tag != "!" and tag not in _PLAIN:
                raise YamlError(f"{where(event.start_mark)}: tag {_short(tag)} is not allowed: "
                                "plain values only (strings, numbers, booleans, null, lists, "
                                "mappings)")
            if isinstance(event, yaml.CollectionStartEvent):
                if len(stack) >= MAX_DEPTH:
                    raise YamlError(f"{where(event.start_mark)}: nesting is not allowed: at most "
                                    f"{MAX_DEPTH} levels")
                stack.append([isinstance(event, yaml.MappingStartEvent), True, None,
                              event.anchor])
            else:
                value_done()
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
            value_done()


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
        _scan_events(text, name)
        loader = type("Loader", (_Loader,), {"_name": name})(text)
        try:
            node = loader.get_single_node()
            if node is None:
                if mapping:
                    raise YamlError(f"{name}: an empty file (or only comments) is not allowed: a "
                                    "mapping of keys to values")
                return None
            loader._paths = _check_graph(node, name)
            value = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as err:
        raise YamlError(f"{name}: not valid YAML ({' '.join(str(err).split())})") from None
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
