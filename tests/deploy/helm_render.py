"""`helm template` for this repository's chart where helm is not installed: a renderer for the part
of Go's text/template and Helm's functions that deploy/helm uses, strict about the rest.

It follows Helm where Helm differs from a naive reading: values are decoded as JSON-like data
(every number a float64, printed with Go's %v, so 2 is "2" and 1048576 "1.048576e+06"), a field
of a missing value is an error while a missing key is empty ("<no value>" becomes ""), maps are
ranged in key order, `{{-`/`-}}` trim all whitespace, `toYaml` drops its final newline, and the
helpers' files (`_*.tpl`) only define. A construct or function outside that part is an error,
not a guess: extend this module (and check it against real helm) before a template uses it.
"""

import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class TemplateError(Exception):
    pass


# --- values as Helm sees them --------------------------------------------------------------


def helm_data(value: Any) -> Any:
    """YAML-decoded data as Helm holds it (sigs.k8s.io/yaml: through JSON, numbers float64)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict):
        return {str(k): helm_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [helm_data(v) for v in value]
    raise TemplateError(f"unsupported value {value!r}")


def merge_values(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = merge_values(base.get(key), value) if key in base else value
        return merged
    return override


def go_float(value: float) -> str:
    """Go's %v of a float64: strconv's 'g' with the shortest digits, where the exponent form is
    used from 1e6 up and below 1e-4 (so Helm prints a value of 1048576 as 1.048576e+06)."""
    if math.isinf(value) or math.isnan(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    digits, exp = _shortest(abs(value))
    sign = "-" if value < 0 else ""
    if exp < -4 or exp >= 6:
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    point = exp + 1
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _shortest(value: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of a positive float and its decimal exponent."""
    mantissa, _, exponent = f"{value!r}".partition("e")
    whole, _, fraction = mantissa.partition(".")
    fraction = "" if fraction == "0" else fraction
    digits = (whole + fraction).lstrip("0")
    exp = len(whole) - 1 + (int(exponent) if exponent else 0)
    if whole == "0":
        exp = -(len(fraction) - len(fraction.lstrip("0")) + 1) + (int(exponent) if exponent else 0)
    return digits.rstrip("0") or "0", exp


def go_str(value: Any) -> str:
    """fmt's %v (what `{{ x }}`, printf's %v/%s and sprig's string conversions print)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, list):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_str(value[k])}" for k in sorted(value)) + "]"
    raise TemplateError(f"cannot print {value!r}")


def truthy(value: Any) -> bool:
    if value is None or value is False:
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value != 0
    if isinstance(value, str | list | dict):
        return len(value) > 0
    return True


def _plain(value: Any) -> Any:
    """Data for YAML/JSON output: integral floats as integers (Go's encoders print 2, not 2.0)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def to_yaml(value: Any) -> str:
    if value is None:
        return "null"
    text = yaml.safe_dump(_plain(value), default_flow_style=False, sort_keys=True, width=1 << 20)
    if text.endswith("...\n"):  # a scalar document
        text = text[: -len("...\n")]
    return text.rstrip("\n")


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return 0
    return 0


def _printf(fmt: str, *args: Any) -> str:
    out, index = [], 0
    for match in re.finditer(r"%[-+# 0]*\d*(?:\.\d+)?[a-zA-Z%]|[^%]+", fmt):
        piece = match.group(0)
        if not piece.startswith("%"):
            out.append(piece)
            continue
        verb = piece[-1]
        if verb == "%":
            out.append("%")
            continue
        if index >= len(args):
            raise TemplateError(f"printf {fmt!r}: missing argument")
        arg = args[index]
        index += 1
        if verb in "sv":
            out.append(go_str(arg))
        elif verb == "d":
            out.append(str(int(arg)))
        elif verb == "q":
            out.append(json.dumps(go_str(arg)))
        else:
            raise TemplateError(f"printf verb %{verb} is not supported")
    return "".join(out)


def _indent(spaces: Any, text: Any) -> str:
    pad = " " * int(spaces)
    return pad + go_str(text).replace("\n", "\n" + pad)


def _required(message: str, value: Any) -> Any:
    if value is None or value == "":
        raise TemplateError(f"required: {message}")
    return value


def _dict(*pairs: Any) -> dict[str, Any]:
    if len(pairs) % 2:
        raise TemplateError("dict needs key/value pairs")
    return {go_str(pairs[i]): pairs[i + 1] for i in range(0, len(pairs), 2)}


def _index(collection: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(collection, dict):
            collection = collection.get(go_str(key))
        elif isinstance(collection, list):
            collection = collection[int(key)]
        else:
            raise TemplateError(f"index of {collection!r}")
    return collection


def _basic_kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise TemplateError(f"invalid type for comparison: {value!r}")
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    raise TemplateError(f"invalid type for comparison: {value!r}")


def _le(a: Any, b: Any) -> bool:
    """Go's `le`: an int (a template literal, sprig's `int`) and a float64 (a value) are
    incompatible types, an error, not a comparison."""
    if _basic_kind(a) != _basic_kind(b):
        raise TemplateError(f"incompatible types for comparison: {a!r} and {b!r}")
    return bool(a <= b)


def _and(*args: Any) -> Any:
    for arg in args:
        if not truthy(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truthy(arg):
            return arg
    return args[-1]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "toYaml": to_yaml,
    "toJson": lambda v: json.dumps(_plain(v), separators=(",", ":")),
    "nindent": lambda n, s: "\n" + _indent(n, s),
    "indent": _indent,
    "quote": lambda *a: " ".join(
        json.dumps(go_str(v), ensure_ascii=False) for v in a if v is not None
    ),
    "default": lambda d, *v: v[0] if v and truthy(v[0]) else d,
    "required": _required,
    "printf": _printf,
    "toString": go_str,
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "replace": lambda old, new, s: go_str(s).replace(old, new),
    "trunc": lambda n, s: go_str(s)[: int(n)],
    "trimSuffix": lambda suffix, s: go_str(s).removesuffix(suffix),
    "add": lambda *a: sum(_to_int(v) for v in a),
    "int": _to_int,
    "le": _le,
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "not": lambda a: not truthy(a),
    "and": _and,
    "or": _or,
    "dict": _dict,
    "list": lambda *a: list(a),
    "index": _index,
}

# --- parsing ---------------------------------------------------------------------------------

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(
    r"""\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<raw>`[^`]*`)|(?P<number>-?\d+(?:\.\d+)?)"""
    r"""|(?P<declare>:=)|(?P<assign>=)|(?P<pipe>\|)|(?P<open>\()|(?P<close>\))|(?P<comma>,)"""
    r"""|(?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)|(?P<field>(?:\.[A-Za-z0-9_]+)+|\.)"""
    r"""|(?P<ident>[A-Za-z_][A-Za-z0-9_]*))"""
)


@dataclass
class Node:
    kind: str  # text, output, if, range, with, define, assign
    text: str = ""
    pipe: Any = None
    variables: list[str] = field(default_factory=list)
    declare: bool = True
    body: list["Node"] = field(default_factory=list)
    other: list["Node"] = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    source = source.strip()
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match or match.end() == pos:
            raise TemplateError(f"cannot parse action {source!r} at {source[pos:]!r}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
        if kind == "close" and source.startswith(".", pos):
            raise TemplateError("a field of a parenthesised pipeline is not supported")
        while pos < len(source) and source[pos].isspace():
            pos += 1
    return out


class _Pipeline:
    """Tokens of one pipeline -> [[command args...], ...]; an arg is a token or a sub-pipeline."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens, self.pos = tokens, 0

    def parse(self) -> list[list[Any]]:
        commands: list[list[Any]] = [[]]
        while self.pos < len(self.tokens):
            kind, value = self.tokens[self.pos]
            self.pos += 1
            if kind == "pipe":
                commands.append([])
            elif kind == "open":
                commands[-1].append(("sub", self.parse()))
            elif kind == "close":
                return commands
            else:
                commands[-1].append((kind, value))
        return commands


def _parse_action(body: str) -> tuple[str, dict[str, Any]]:
    tokens = _tokens(body)
    if not tokens:
        raise TemplateError("empty action")
    head = tokens[0]
    if head == ("ident", "end"):
        return "end", {}
    if head == ("ident", "else"):
        rest = tokens[1:]
        if rest and rest[0] == ("ident", "if"):
            return "elseif", {"pipe": _Pipeline(rest[1:]).parse()}
        return "else", {}
    if head[0] == "ident" and head[1] in ("if", "with", "define"):
        return head[1], {"pipe": _Pipeline(tokens[1:]).parse()}
    if head == ("ident", "range"):
        rest = tokens[1:]
        names: list[str] = []
        if any(k == "declare" for k, _ in rest):
            while rest[0][0] in ("var", "comma"):
                if rest[0][0] == "var":
                    names.append(rest[0][1])
                rest = rest[1:]
            rest = rest[1:]  # :=
        return "range", {"pipe": _Pipeline(rest).parse(), "variables": names}
    if head[0] == "var" and len(tokens) > 1 and tokens[1][0] in ("declare", "assign"):
        return "assign", {
            "pipe": _Pipeline(tokens[2:]).parse(),
            "variables": [head[1]],
            "declare": tokens[1][0] == "declare",
        }
    if head[0] == "ident" and head[1] in ("template", "block", "break", "continue"):
        raise TemplateError(f"{head[1]} is not supported")
    return "output", {"pipe": _Pipeline(tokens).parse()}


def parse(source: str) -> list[Node]:
    """The template's node tree (whitespace trimming applied)."""
    pieces: list[tuple[str, str]] = []
    pos = 0
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if match.group(1):
            text = text.rstrip()
        pieces.append(("text", text))
        inner = match.group(2)
        if not inner.strip().startswith("/*"):
            pieces.append(("action", inner))
        pos = match.end()
        if match.group(3):
            while pos < len(source) and source[pos].isspace():
                pos += 1
    pieces.append(("text", source[pos:]))
    if "{{" in "".join(t for k, t in pieces if k == "text"):
        raise TemplateError("unbalanced {{ in template")

    root = Node("root")
    stack = [root]
    for kind, content in pieces:
        current = stack[-1]
        target = current.other if getattr(current, "_in_else", False) else current.body
        if kind == "text":
            if content:
                target.append(Node("text", text=content))
            continue
        what, parts = _parse_action(content)
        if what in ("if", "with", "range", "define"):
            node = Node(what, **parts)
            target.append(node)
            stack.append(node)
        elif what == "else":
            current._in_else = True  # type: ignore[attr-defined]
        elif what == "elseif":
            nested = Node("if", **parts)
            target_else = current.other
            current._in_else = True  # type: ignore[attr-defined]
            target_else.append(nested)
            nested._closes_parent = True  # type: ignore[attr-defined]
            stack.append(nested)
        elif what == "end":
            if len(stack) == 1:
                raise TemplateError("end without a block")
            closed = stack.pop()
            while getattr(closed, "_closes_parent", False):
                closed = stack.pop()
        else:
            target.append(Node(what, **parts))
    if len(stack) != 1:
        raise TemplateError("block without end")
    return root.body


# --- evaluation ------------------------------------------------------------------------------

_MISSING = object()


class Renderer:
    def __init__(self, chart: Path, root: dict[str, Any]) -> None:
        self.chart = chart
        self.root = root
        self.defines: dict[str, list[Node]] = {}

    def field(self, value: Any, names: list[str]) -> Any:
        for name in names:
            if isinstance(value, dict):
                value = value.get(name)
            elif value is None:
                raise TemplateError(f"nil pointer evaluating field .{name}")
            else:
                raise TemplateError(f"can't evaluate field {name} in {type(value).__name__}")
        return value

    def argument(self, token: tuple[str, Any], dot: Any, scope: list[dict[str, Any]]) -> Any:
        kind, value = token
        if kind == "string":
            return json.loads(value)
        if kind == "raw":
            return value[1:-1]
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "sub":
            return self.pipeline(value, dot, scope)
        if kind == "field":
            return dot if value == "." else self.field(dot, value[1:].split("."))
        if kind == "var":
            name, *path = value.split(".")
            for frame in reversed(scope):
                if name in frame:
                    return self.field(frame[name], path)
            raise TemplateError(f"undefined variable {name}")
        if kind == "ident":
            if value in ("true", "false"):
                return value == "true"
            if value == "nil":
                return None
            return self.call(value, [], dot, scope)
        raise TemplateError(f"unexpected {kind} {value!r}")

    def call(self, name: str, args: list[Any], dot: Any, scope: list[dict[str, Any]]) -> Any:
        if name == "include":
            template, context = args
            return self.include(template, context)
        if name not in FUNCTIONS:
            raise TemplateError(f'function "{name}" not defined (or not supported here)')
        return FUNCTIONS[name](*args)

    def include(self, name: str, context: Any) -> str:
        if name not in self.defines:
            raise TemplateError(f'no template "{name}"')
        return self.execute(self.defines[name], context, [{"$": context}])

    def command(self, command: list[Any], dot: Any, scope: list[dict[str, Any]], piped: Any) -> Any:
        head = command[0]
        args = [self.argument(t, dot, scope) for t in command[1:]]
        if piped is not _MISSING:
            args.append(piped)
        if head[0] == "ident" and head[1] not in ("true", "false", "nil"):
            return self.call(head[1], args, dot, scope)
        if head[0] == "field" and head[1].startswith(".Files."):
            if head[1] != ".Files.Get":
                raise TemplateError(f"{head[1]} is not supported")
            return (self.chart / args[0]).read_text()
        if args:
            raise TemplateError(f"{head[1]} takes no arguments")
        return self.argument(head, dot, scope)

    def pipeline(self, commands: list[list[Any]], dot: Any, scope: list[dict[str, Any]]) -> Any:
        value: Any = _MISSING
        for command in commands:
            if not command:
                raise TemplateError("empty command in pipeline")
            value = self.command(command, dot, scope, value)
        return value

    def execute(self, nodes: list[Node], dot: Any, scope: list[dict[str, Any]]) -> str:
        out: list[str] = []
        scope = [*scope, {}]
        for node in nodes:
            if node.kind == "text":
                out.append(node.text)
            elif node.kind == "output":
                out.append(go_str(self.pipeline(node.pipe, dot, scope)))
            elif node.kind == "assign":
                value = self.pipeline(node.pipe, dot, scope)
                name = node.variables[0]
                if node.declare:
                    scope[-1][name] = value
                else:
                    for frame in reversed(scope):
                        if name in frame:
                            frame[name] = value
                            break
                    else:
                        raise TemplateError(f"undefined variable {name}")
            elif node.kind == "if":
                branch = node.body if truthy(self.pipeline(node.pipe, dot, scope)) else node.other
                out.append(self.execute(branch, dot, scope))
            elif node.kind == "with":
                value = self.pipeline(node.pipe, dot, scope)
                if truthy(value):
                    out.append(self.execute(node.body, value, scope))
                else:
                    out.append(self.execute(node.other, dot, scope))
            elif node.kind == "range":
                out.append(self.range(node, dot, scope))
            elif node.kind == "define":
                self.defines[self.argument(node.pipe[0][0], dot, scope)] = node.body
        return "".join(out)

    def range(self, node: Node, dot: Any, scope: list[dict[str, Any]]) -> str:
        value = self.pipeline(node.pipe, dot, scope)
        items: Iterator[tuple[Any, Any]]
        if isinstance(value, dict):
            items = ((k, value[k]) for k in sorted(value))
        elif isinstance(value, list):
            items = enumerate(value)
        elif value is None:
            items = iter(())
        else:
            raise TemplateError(f"range over {value!r}")
        out, seen = [], False
        for key, element in items:
            seen = True
            frame: dict[str, Any] = {}
            if len(node.variables) == 1:
                frame[node.variables[0]] = element
            elif len(node.variables) == 2:
                frame[node.variables[0]], frame[node.variables[1]] = key, element
            out.append(self.execute(node.body, element, [*scope, frame]))
        if not seen:
            out.append(self.execute(node.other, dot, scope))
        return "".join(out)


def render_chart(
    chart: Path,
    overrides: dict[str, Any] | None = None,
    *,
    release: str = "ftd",
    namespace: str = "finetune",
) -> dict[str, str]:
    """{template path: rendered text} for the chart's templates, as `helm template` renders."""
    meta = yaml.safe_load((chart / "Chart.yaml").read_text())
    values = merge_values(
        helm_data(yaml.safe_load((chart / "values.yaml").read_text()) or {}),
        helm_data(overrides or {}),
    )
    root = {
        "Values": values,
        "Release": {
            "Name": release,
            "Namespace": namespace,
            "Service": "Helm",
            "IsInstall": True,
            "IsUpgrade": False,
        },
        "Chart": {
            "Name": meta["name"],
            "Version": meta["version"],
            "AppVersion": meta.get("appVersion", ""),
        },
    }
    renderer = Renderer(chart, root)
    templates = sorted((chart / "templates").rglob("*"))
    parsed = {p: parse(p.read_text()) for p in templates if p.is_file()}
    for nodes in parsed.values():  # defines first, from every file, as Helm does
        for node in nodes:
            if node.kind == "define":
                renderer.defines[json.loads(node.pipe[0][0][1])] = node.body
    rendered = {}
    for path, nodes in parsed.items():
        if path.name.startswith("_") or path.suffix not in (".yaml", ".yml", ".tpl"):
            continue
        text = renderer.execute(nodes, root, [{"$": root}]).replace("<no value>", "")
        rendered[str(path.relative_to(chart))] = text
    return rendered


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """Every non-empty YAML document of the rendered templates."""
    out = []
    for text in rendered.values():
        for document in yaml.safe_load_all(text):
            if document:
                out.append(document)
    return out
