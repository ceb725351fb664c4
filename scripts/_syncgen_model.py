"""Introspection of the async client for ``scripts/generate_sync.py``.

This module finds the async classes that get a sync twin, lists their public
members, resolves the names used in their annotations (including imports made
only under ``TYPE_CHECKING``) and rewrites async annotations into sync ones.
"""

from __future__ import annotations

import ast
import builtins
import collections.abc
import contextlib
import functools
import importlib
import importlib.util
import inspect
import sys
import textwrap
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PACKAGE = "maestro_ml_async"
OUTPUT = ROOT / PACKAGE / "_sync" / "_client.py"
OUTPUT_MODULE = f"{PACKAGE}._sync._client"
# Packages whose classes are mirrored; tests add the package of a fake API.
MIRRORED_PACKAGES = {PACKAGE}
ROOT_SYNC_NAME = "MaestroClient"

# Instance attributes that `__init__` assigns without an annotation; a class-level
# annotation on the async class makes an entry here unnecessary.
KNOWN_ATTRIBUTE_TYPES = {("AsyncMaestroClient", "config"): "Config"}
# Async protocol members and their sync names.
RENAMED = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
}
SKIPPED_DUNDERS = {"__anext__", "__await__"}

ASYNC_ITERATORS = {
    collections.abc.AsyncIterator: "Iterator",
    collections.abc.AsyncGenerator: "Iterator",
    collections.abc.AsyncIterable: "Iterable",
    typing.AsyncIterator: "Iterator",
    typing.AsyncGenerator: "Iterator",
    typing.AsyncIterable: "Iterable",
}
AWAITABLES = {
    collections.abc.Awaitable,
    collections.abc.Coroutine,
    typing.Awaitable,
    typing.Coroutine,
}
ASYNC_CONTEXTS = {contextlib.AbstractAsyncContextManager, typing.AsyncContextManager}
CALLABLES = {collections.abc.Callable, typing.Callable}


class GeneratorError(Exception):
    """The async API uses a shape that the generator cannot translate."""


class MissingModuleError(GeneratorError):
    """An annotation names a module that does not exist (yet)."""


# ---------------------------------------------------------------------------
# Name resolution


@dataclass
class ModuleNames:
    """The names a source module can use in annotations, and where they live."""

    module: Any
    imports: dict[str, tuple[str, str | None]]

    @classmethod
    def of(cls, module_name: str) -> ModuleNames:
        module = importlib.import_module(module_name)
        tree = ast.parse(inspect.getsource(module))
        imports: dict[str, tuple[str, str | None]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = "." * node.level + (node.module or "")
                source = importlib.util.resolve_name(base, module.__package__)
                for alias in node.names:
                    imports[alias.asname or alias.name] = (source, alias.name)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    local = alias.asname or alias.name.split(".")[0]
                    imports[local] = (alias.name if alias.asname else local, None)
        return cls(module, imports)

    def resolve(self, name: str) -> tuple[Any, tuple[str, str | None] | None]:
        """Return the object behind `name` and the import that provides it."""
        if name in self.imports:
            source, attr = self.imports[name]
            try:
                target = importlib.import_module(source)
                if attr is not None:
                    if hasattr(target, attr):
                        return getattr(target, attr), (source, attr)
                    target = importlib.import_module(f"{source}.{attr}")
            except ModuleNotFoundError as exc:
                raise MissingModuleError(
                    f"{self.module.__name__}: {name!r} comes from {exc.name}, "
                    "which does not exist"
                ) from None
            return target, (source, attr)
        if name in vars(self.module):
            return vars(self.module)[name], (self.module.__name__, name)
        if hasattr(builtins, name):
            return getattr(builtins, name), None
        raise GeneratorError(f"{self.module.__name__}: cannot resolve name {name!r}")


@functools.cache
def module_names(module_name: str) -> ModuleNames:
    return ModuleNames.of(module_name)


def resolve_node(names: ModuleNames, node: ast.expr) -> Any:
    """Return the object an annotation node refers to, or None when unknown."""
    if isinstance(node, ast.Name):
        return names.resolve(node.id)[0]
    if isinstance(node, ast.Attribute):
        base = resolve_node(names, node.value)
        return getattr(base, node.attr, None)
    return None


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


# ---------------------------------------------------------------------------
# Imports of the generated module


@dataclass
class Imports:
    """Imports that the generated module needs, split by runtime use."""

    runtime: set[tuple[str, str | None, str]] = field(default_factory=set)
    typing_only: set[tuple[str, str | None, str]] = field(default_factory=set)
    typevars: dict[str, Any] = field(default_factory=dict)

    def add(self, source: str, attr: str | None, local: str, *, runtime: bool) -> None:
        for existing in self.runtime | self.typing_only:
            if existing[2] == local and existing[:2] != (source, attr):
                raise GeneratorError(
                    f"name {local!r} comes from both {existing[0]} and {source}; "
                    "rename one of them"
                )
        (self.runtime if runtime else self.typing_only).add((source, attr, local))

    def render(self) -> tuple[list[str], list[str]]:
        runtime_lines = sorted(render_import(*item) for item in self.runtime)
        typing_lines = sorted(
            render_import(*item)
            for item in self.typing_only - self.runtime
            if item[2] not in {r[2] for r in self.runtime}
        )
        return runtime_lines, typing_lines


def render_import(source: str, attr: str | None, local: str) -> str:
    inside = OUTPUT_MODULE.startswith(PACKAGE + ".")
    if inside and (source == PACKAGE or source.startswith(PACKAGE + ".")):
        output_package = OUTPUT_MODULE.split(".")[:-1]
        parts = source.split(".")
        common = 0
        while (
            common < min(len(output_package), len(parts))
            and output_package[common] == parts[common]
        ):
            common += 1
        dots = "." * (len(output_package) - common + 1)
        source = dots + ".".join(parts[common:])
    if attr is None:
        return f"import {source}" if source == local else f"import {source} as {local}"
    suffix = "" if attr == local else f" as {local}"
    return f"from {source} import {attr}{suffix}"


# ---------------------------------------------------------------------------
# Model of the async API


@dataclass
class Member:
    """One public member of an async class and how its sync twin is made."""

    name: str
    sync_name: str
    kind: str  # "property", "cached_property", "attribute", "function"
    module: str
    function: Any = None
    annotation: str | None = None


@dataclass
class ClassPlan:
    async_cls: type
    sync_name: str
    members: list[Member]


def is_async_context_function(func: Any) -> bool:
    wrapped = getattr(func, "__wrapped__", None)
    return wrapped is not None and inspect.isasyncgenfunction(wrapped)


def in_package(module: str) -> bool:
    return any(
        module == package or module.startswith(package + ".")
        for package in MIRRORED_PACKAGES
    )


def package_classes(cls: type) -> list[type]:
    return [klass for klass in cls.__mro__ if in_package(klass.__module__)]


def function_node(func: Any) -> ast.FunctionDef | ast.AsyncFunctionDef:
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(func)))
    node = ast.parse(source).body[0]
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        raise GeneratorError(f"{func.__qualname__}: not a function definition")
    return node


def init_attributes(cls: type) -> dict[str, str]:
    """Public attributes that `__init__` assigns, with their annotations."""
    init = vars(cls).get("__init__")
    if init is None:
        return {}
    found: dict[str, str] = {}
    for node in ast.walk(function_node(init)):
        target: ast.expr | None = None
        annotation: str | None = None
        if isinstance(node, ast.AnnAssign):
            target, annotation = node.target, ast.unparse(node.annotation)
        elif isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if not (
            isinstance(target, ast.Attribute)
            and isinstance(target.value, ast.Name)
            and target.value.id == "self"
            and not target.attr.startswith("_")
        ):
            continue
        annotation = (
            annotation
            or vars(cls).get("__annotations__", {}).get(target.attr)
            or KNOWN_ATTRIBUTE_TYPES.get((cls.__name__, target.attr))
        )
        if annotation is None:
            raise GeneratorError(
                f"{cls.__name__}.{target.attr} has no annotation; add "
                f"'{target.attr}: <type>' to the class body"
            )
        found[target.attr] = annotation
    return found


def collect_members(cls: type) -> list[Member]:
    members: dict[str, Member] = {}
    for klass in package_classes(cls):
        for name, value in vars(klass).items():
            if name in members or name in SKIPPED_DUNDERS:
                continue
            if name.startswith("_") and name not in RENAMED:
                continue
            sync_name = RENAMED.get(name, name)
            module = klass.__module__
            if isinstance(value, functools.cached_property):
                members[name] = Member(
                    name, sync_name, "cached_property", module, value.func
                )
            elif isinstance(value, property):
                members[name] = Member(name, sync_name, "property", module, value.fget)
            elif isinstance(value, staticmethod | classmethod):
                members[name] = Member(name, sync_name, "static", module, value)
            elif inspect.isfunction(value) and in_package(value.__module__):
                # Functions that a library adds to the class (such as pydantic's
                # model_post_init) are not part of the package's API.
                members[name] = Member(name, sync_name, "function", module, value)
        annotations = vars(klass).get("__annotations__", {})
        for name, annotation in annotations.items():
            if name.startswith("_") or name in members or name == "model_config":
                continue
            text = annotation if isinstance(annotation, str) else None
            if text is None or text.startswith(("ClassVar", "typing.ClassVar")):
                continue
            members[name] = Member(
                name, name, "attribute", klass.__module__, annotation=text
            )
    for name, annotation in init_attributes(cls).items():
        members.setdefault(
            name, Member(name, name, "attribute", cls.__module__, annotation=annotation)
        )
    by_sync = [member.sync_name for member in members.values()]
    duplicates = {name for name in by_sync if by_sync.count(name) > 1}
    if duplicates:
        raise GeneratorError(f"{cls.__name__}: sync names collide: {duplicates}")
    return sorted(members.values(), key=lambda member: member.sync_name)


def return_annotation(member: Member) -> str | None:
    if member.kind == "attribute":
        return member.annotation
    node = function_node(member.function)
    return ast.unparse(node.returns) if node.returns is not None else None


def is_async_member(cls: type, member: Member) -> bool:
    func = member.function
    if member.name in RENAMED:
        return True
    if func is not None and (
        inspect.iscoroutinefunction(func)
        or inspect.isasyncgenfunction(func)
        or is_async_context_function(func)
    ):
        return True
    annotation = return_annotation(member)
    if annotation is None:
        return False
    names = module_names(member.module)
    for node in ast.walk(ast.parse(annotation, mode="eval")):
        if isinstance(node, ast.Name | ast.Attribute):
            obj = resolve_node(names, node)
            if obj in ASYNC_ITERATORS or obj in AWAITABLES or obj in ASYNC_CONTEXTS:
                return True
            if getattr(obj, "__name__", None) == "AsyncPager":
                return True
    return False


def has_async_members(cls: type) -> bool:
    members = [m for m in collect_members(cls) if m.kind != "static"]
    return any(is_async_member(cls, member) for member in members)


def sync_class_name(cls: type) -> str:
    if cls.__name__.startswith("Async") and cls.__name__ != "Async":
        return cls.__name__[len("Async") :]
    return "Sync" + cls.__name__


def referenced_classes(names: ModuleNames, text: str) -> Iterator[type]:
    for node in ast.walk(ast.parse(text, mode="eval")):
        if isinstance(node, ast.Name | ast.Attribute):
            obj = resolve_node(names, node)
            if inspect.isclass(obj) and package_classes(obj):
                yield obj


def member_annotations(member: Member) -> Iterator[str]:
    if member.kind == "attribute":
        if member.annotation:
            yield member.annotation
        return
    node = function_node(member.function)
    for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
        if arg.annotation is not None:
            yield ast.unparse(arg.annotation)
    if node.returns is not None:
        yield ast.unparse(node.returns)


def plan_classes(root: type) -> tuple[list[ClassPlan], dict[type, str]]:
    """Find the classes that get a sync twin, starting at `root`."""
    wrapped: dict[type, str] = {root: ROOT_SYNC_NAME}
    queue = [root]
    plans: list[ClassPlan] = []
    while queue:
        cls = queue.pop(0)
        members: list[Member] = []
        for member in collect_members(cls):
            if member.kind == "static":
                note(
                    f"skipped {cls.__name__}.{member.name}: static and class "
                    "methods have no sync twin"
                )
                continue
            try:
                found = referenced_package_classes(member)
            except MissingModuleError as exc:
                note(f"skipped {cls.__name__}.{member.name}: {exc}")
                continue
            members.append(member)
            for klass in found:
                if klass not in wrapped and klass.__name__ != "AsyncPager":
                    if has_async_members(klass):
                        wrapped[klass] = sync_class_name(klass)
                        queue.append(klass)
        plans.append(ClassPlan(cls, wrapped[cls], members))
    return plans, wrapped


def referenced_package_classes(member: Member) -> list[type]:
    names = module_names(member.module)
    return [
        found
        for text in member_annotations(member)
        for found in referenced_classes(names, text)
    ]


def note(message: str) -> None:
    print(f"generate_sync: note: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Translation of annotations


class Translator:
    """Rewrites annotations from async to sync types and records their imports."""

    def __init__(self, wrapped: dict[type, str], imports: Imports) -> None:
        self.wrapped = wrapped
        self.imports = imports

    def annotation(self, names: ModuleNames, text: str, *, param: bool) -> str:
        node = ast.parse(text, mode="eval").body
        return ast.unparse(self._convert(names, node, param=param, in_callable=False))

    def _keep(self, names: ModuleNames, node: ast.expr) -> ast.expr:
        name = root_name(node)
        if name is None:
            return node
        obj, origin = names.resolve(name)
        if isinstance(obj, typing.TypeVar):
            self.imports.typevars[name] = obj
        elif origin is not None:
            self.imports.add(origin[0], origin[1], name, runtime=False)
        return node

    def _named(self, source: str, name: str) -> ast.Name:
        self.imports.add(source, name, name, runtime=source.startswith(PACKAGE))
        return ast.Name(name)

    def _convert(
        self, names: ModuleNames, node: ast.expr, *, param: bool, in_callable: bool
    ) -> ast.expr:
        def convert(sub: ast.expr, inside: bool = in_callable) -> ast.expr:
            return self._convert(names, sub, param=param, in_callable=inside)

        if isinstance(node, ast.BinOp):
            return ast.BinOp(convert(node.left), node.op, convert(node.right))
        if isinstance(node, ast.Tuple | ast.List):
            return type(node)([convert(item) for item in node.elts])
        if isinstance(node, ast.Name | ast.Attribute):
            obj = resolve_node(names, node)
            if obj in self.wrapped:
                return ast.Name(self.wrapped[obj])
            if obj in ASYNC_ITERATORS or obj in AWAITABLES or obj in ASYNC_CONTEXTS:
                raise GeneratorError(f"unparameterised {ast.unparse(node)}")
            return self._keep(names, node)
        if not isinstance(node, ast.Subscript):
            return node
        base = resolve_node(names, node.value)
        args = (
            list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        )
        if base in AWAITABLES:
            if param and not in_callable:
                raise GeneratorError(f"awaitable parameter {ast.unparse(node)}")
            return convert(args[-1])
        if base in ASYNC_ITERATORS:
            target = self._named("collections.abc", ASYNC_ITERATORS[base])
            return ast.Subscript(target, convert(args[0]))
        if base in ASYNC_CONTEXTS:
            target = self._named("contextlib", "AbstractContextManager")
            return ast.Subscript(target, convert(args[0]))
        if getattr(base, "__name__", None) == "AsyncPager":
            target = self._named(f"{PACKAGE}._sync._adapters", "Pager")
            return ast.Subscript(target, convert(args[0]))
        inside = base in CALLABLES
        value = self._keep(names, node.value)
        new_args = [convert(arg, inside) for arg in args]
        new_slice = ast.Tuple(new_args) if len(new_args) > 1 else new_args[0]
        return ast.Subscript(value, new_slice)


NESTED = "<nested>"


def classify_return(
    names: ModuleNames, text: str | None, wrapped: dict[type, str]
) -> tuple[str, str | None]:
    """Return how a result is converted: a kind and the converter it needs.

    Kinds: "direct", "await" (the annotation is an awaitable), "iterator",
    "pager", "context", "wrap", "optional", "list" and "nested". The converter
    is the sync class when the value or its items are instances of a wrapped
    class, `NESTED` when wrapped instances sit deeper inside the items, and
    None when nothing needs converting.
    """
    if text is None:
        return "direct", None
    node = ast.parse(text, mode="eval").body

    def wrapped_name(sub: ast.expr) -> str | None:
        if isinstance(sub, ast.Name | ast.Attribute):
            return wrapped.get(resolve_node(names, sub))
        return None

    def mentions_wrapped(sub: ast.AST) -> bool:
        return any(
            isinstance(inner, ast.Name | ast.Attribute)
            and resolve_node(names, inner) in wrapped
            for inner in ast.walk(sub)
        )

    if name := wrapped_name(node):
        return "wrap", name
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        for left, right in ((node.left, node.right), (node.right, node.left)):
            if isinstance(right, ast.Constant) and right.value is None:
                if name := wrapped_name(left):
                    return "optional", name
    if isinstance(node, ast.Subscript):
        base = resolve_node(names, node.value)
        args = (
            list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        )
        if base in AWAITABLES:
            return "await", None
        kind = None
        if base in ASYNC_ITERATORS:
            kind = "iterator"
        elif getattr(base, "__name__", None) == "AsyncPager":
            kind = "pager"
        elif base is list:
            kind = "list"
        elif base in ASYNC_CONTEXTS:
            if mentions_wrapped(args[0]):
                raise GeneratorError(
                    f"cannot convert {text!r}: an async context "
                    "manager that yields a wrapped class"
                )
            return "context", None
        if kind is not None:
            if name := wrapped_name(args[0]):
                return kind, name
            if mentions_wrapped(args[0]):
                return ("nested", NESTED) if kind == "list" else (kind, NESTED)
            return ("direct", None) if kind == "list" else (kind, None)
    if mentions_wrapped(node):
        return "nested", NESTED
    return "direct", None


def unwrap_awaitable(text: str) -> str:
    node = ast.parse(text, mode="eval").body
    assert isinstance(node, ast.Subscript)
    args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
    return ast.unparse(args[-1])
