"""Generate the sync client, ``maestro_ml_async/_sync/_client.py``.

The generator imports `AsyncMaestroClient`, follows the return annotations of
its members to the sub-client classes (and to any other class of the package
with async members that a member returns), and writes one sync class per async
class. Every public async method, property, async iterator and async context
manager gets a sync twin with the same name, parameters, defaults and
docstring. The async protocol methods ``aclose``, ``__aenter__``, ``__aexit__``
and ``__aiter__`` become ``close``, ``__enter__``, ``__exit__`` and
``__iter__``.

Run it from the repository root after changing the async API::

    .venv/bin/python scripts/generate_sync.py          # rewrite the module
    .venv/bin/python scripts/generate_sync.py --check  # exit 1 when stale

Annotations are copied as source text, so the generated module imports every
name it mentions; names used only in annotations are imported under
``TYPE_CHECKING``, which keeps kubernetes-asyncio out of ``import
maestro_ml_async``.
"""

from __future__ import annotations

import argparse
import ast
import enum
import inspect
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _syncgen_model import (
    AWAITABLES,
    CALLABLES,
    NESTED,
    OUTPUT,
    PACKAGE,
    ROOT,
    ClassPlan,
    GeneratorError,
    Imports,
    Member,
    ModuleNames,
    Translator,
    classify_return,
    function_node,
    is_async_context_function,
    module_names,
    plan_classes,
    referenced_classes,
    resolve_node,
    unwrap_awaitable,
)

# The generated dict that maps async class paths to their sync classes.
CLASS_TABLE = "_SYNC_CLASSES"


# Phrases of the async docstrings rewritten for the sync twin, so that its
# help shows sync usage. A phrase matches only within one line.
SYNC_WORDING: list[tuple[str, str]] = [
    (
        "A pager: ``await`` it for a list, iterate it with ``async for``, or",
        "A pager: iterate it with ``for``, index it, take its ``len()``, or",
    ),
    (
        "A pager: ``await`` it for a list, or iterate it with ``async for``.",
        "A pager: iterate it with ``for``, index it or take its ``len()``.",
    ),
    ("``await client.", "``client."),
    ("``async for ", "``for "),
    ("``async with AsyncMaestroClient(", "``with MaestroClient("),
    ("``AsyncMaestroClient(", "``MaestroClient("),
    ("`aclose` when done", "`close` when done"),
]


def sync_wording(text: str) -> str:
    """Rewrite the async usage phrases of a docstring in their sync form."""
    for phrase, replacement in SYNC_WORDING:
        text = text.replace(phrase, replacement)
    return text


def docstring_literal(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    body = sync_wording(inspect.cleandoc(text))
    body = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    lines = body.splitlines()
    if len(lines) == 1:
        return [f'{indent}"""{lines[0]}"""']
    out = [f'{indent}"""{lines[0]}']
    out += [f"{indent}{line}" if line else "" for line in lines[1:]]
    out.append(f'{indent}"""')
    return out


def callable_adaptation(names: ModuleNames, text: str) -> str | None:
    """Return "plain" or "optional" when a parameter takes a coroutine function."""

    def is_async_callable(node: ast.expr) -> bool:
        if not isinstance(node, ast.Subscript):
            return False
        if resolve_node(names, node.value) not in CALLABLES:
            return False
        if not isinstance(node.slice, ast.Tuple) or len(node.slice.elts) != 2:
            return False
        result = node.slice.elts[1]
        return (
            isinstance(result, ast.Subscript)
            and resolve_node(names, result.value) in AWAITABLES
        )

    node = ast.parse(text, mode="eval").body
    if is_async_callable(node):
        return "plain"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        if any(isinstance(s, ast.Constant) and s.value is None for s in sides) and any(
            is_async_callable(s) for s in sides
        ):
            return "optional"
    return None


class Emitter:
    """Writes the source of the sync classes."""

    def __init__(self, plans: list[ClassPlan], wrapped: dict[type, str]) -> None:
        self.plans = plans
        self.wrapped = wrapped
        self.imports = Imports()
        self.translator = Translator(wrapped, self.imports)

    def helper(self, name: str) -> str:
        module = "_runtime" if name == "SyncRunner" else "_adapters"
        self.imports.add(f"{PACKAGE}._sync.{module}", name, name, runtime=True)
        return name

    def functools(self) -> str:
        self.imports.add("functools", None, "functools", runtime=True)
        return "functools"

    def default_text(self, names: ModuleNames, node: ast.expr, value: Any) -> str:
        """Return source text for a default value, importing what it needs.

        Values whose repr is a literal are written as that literal, so a default
        named by a module constant does not need the constant's import.
        """
        if isinstance(value, enum.Enum):
            cls = type(value)
            self.imports.add(cls.__module__, cls.__name__, cls.__name__, runtime=True)
            return f"{cls.__name__}.{value.name}"
        try:
            if ast.literal_eval(repr(value)) == value:
                return repr(value)
        except (ValueError, SyntaxError):
            pass
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name):
                _, origin = names.resolve(sub.id)
                if origin is not None:
                    self.imports.add(*origin, sub.id, runtime=True)
        return ast.unparse(node)

    def parameters(self, names: ModuleNames, func: Any) -> tuple[list[str], list[str]]:
        """Return the parameter texts of the sync twin and its forwarded args."""
        spec = function_node(func).args
        signature = inspect.signature(func)
        ordered = [*spec.posonlyargs, *spec.args]
        defaults = dict(
            zip(
                [a.arg for a in ordered[len(ordered) - len(spec.defaults) :]],
                spec.defaults,
                strict=True,
            )
        )
        for arg, node in zip(spec.kwonlyargs, spec.kw_defaults, strict=True):
            if node is not None:
                defaults[arg.arg] = node
        params: list[str] = []
        positional: list[str] = []
        keyword: list[str] = []
        for arg in [*spec.posonlyargs, *spec.args][1:]:
            text, value = self.parameter(names, arg, signature, defaults)
            params.append(text)
            positional.append(value)
            if spec.posonlyargs and arg is spec.posonlyargs[-1]:
                params.append("/")
        if spec.vararg is not None:
            text, value = self.parameter(names, spec.vararg, signature, defaults)
            params.append("*" + text)
            positional.append("*" + value)
        elif spec.kwonlyargs:
            params.append("*")
        for arg in spec.kwonlyargs:
            text, value = self.parameter(names, arg, signature, defaults)
            params.append(text)
            keyword.append(f"{arg.arg}={value}")
        if spec.kwarg is not None:
            text, value = self.parameter(names, spec.kwarg, signature, defaults)
            params.append("**" + text)
            keyword.append("**" + value)
        return params, positional + keyword

    def parameter(
        self,
        names: ModuleNames,
        arg: ast.arg,
        signature: inspect.Signature,
        defaults: dict[str, ast.expr],
    ) -> tuple[str, str]:
        """Return one parameter's text and the expression that forwards it."""
        text = value = arg.arg
        if arg.annotation is not None:
            source = ast.unparse(arg.annotation)
            text += ": " + self.translator.annotation(names, source, param=True)
            adaptation = callable_adaptation(names, source)
            if adaptation is not None:
                helper = self.helper("run_in_worker_thread")
                adapted = f"{helper}(self._runner, {value})"
                if adaptation == "optional":
                    adapted = f"None if {value} is None else {adapted}"
                value = adapted
            elif any(True for _ in referenced_wrapped(names, source, self.wrapped)):
                value = f"{self.helper('unwrap')}({value})"
        default = signature.parameters[arg.arg].default
        if default is not inspect.Parameter.empty:
            text += " = " + self.default_text(names, defaults[arg.arg], default)
        return text, value

    def convert(
        self,
        kind: str,
        sync_class: str | None,
        expr: str,
        sync_returns: str | None = None,
    ) -> list[str]:
        """Return body lines that turn the async result `expr` into its sync form."""
        runner = "self._runner"
        partial = ""
        if sync_class == NESTED:
            helper = self.helper("convert_nested")
            partial = f"{self.functools()}.partial({helper}, {runner}, {CLASS_TABLE})"
        elif sync_class:
            partial = f"{self.functools()}.partial({sync_class}, {runner})"
        if kind == "nested":
            self.imports.add("typing", "cast", "cast", runtime=True)
            helper = self.helper("convert_nested")
            converted = f"{helper}({runner}, {expr}, {CLASS_TABLE})"
            return [f"return cast({sync_returns!r}, {converted})"]
        if kind == "wrap":
            return [f"return {sync_class}({runner}, {expr})"]
        if kind == "optional":
            return [
                f"result = {expr}",
                f"return None if result is None else {sync_class}({runner}, result)",
            ]
        if kind == "list" and sync_class:
            return [f"return [{sync_class}({runner}, item) for item in {expr}]"]
        if kind == "iterator":
            if sync_class:
                helper = self.helper("iterate_converted")
                return [f"return {helper}({runner}, {expr}, {partial})"]
            return [f"return {self.helper('iterate')}({runner}, {expr})"]
        if kind == "pager":
            pager = self.helper("Pager")
            extra = f", {partial}" if sync_class else ""
            return [f"return {pager}({runner}, {expr}{extra})"]
        if kind == "context":
            return [f"return {self.helper('SyncContextManager')}({runner}, {expr})"]
        return [f"return {expr}"]

    def function(self, plan: ClassPlan, member: Member, *, root: bool) -> list[str]:
        """Return the source lines of the sync twin of a method."""
        func = member.function
        names = module_names(member.module)
        params, forward = self.parameters(names, func)
        sync_returns, body = self.function_body(plan, member, forward, root=root)
        signature = ", ".join(["self", *params])
        arrow = f" -> {sync_returns}" if sync_returns else ""
        lines = [f"    def {member.sync_name}({signature}){arrow}:"]
        lines += docstring_literal(func.__doc__, "        ")
        lines += [f"        {line}" for line in body]
        return lines

    def function_body(
        self, plan: ClassPlan, member: Member, forward: list[str], *, root: bool
    ) -> tuple[str | None, list[str]]:
        """Return the sync return annotation and the body of a method's twin."""
        func = member.function
        names = module_names(member.module)
        node = function_node(func)
        returns = ast.unparse(node.returns) if node.returns is not None else None
        sync_returns = None
        if returns is not None:
            sync_returns = self.translator.annotation(names, returns, param=False)
        target = f"self._async.{member.name}"
        awaited = ", ".join([target, *forward])
        direct = f"{target}({', '.join(forward)})"
        run = f"self._runner.call({awaited})"
        if member.name == "__aenter__" and (root or returns_self(names, plan, returns)):
            return plan.sync_name, [run, "return self"]
        if root and member.name in {"aclose", "__aexit__"}:
            closer = f"{self.functools()}.partial({awaited})" if forward else target
            return sync_returns, [f"self._runner.shutdown({closer})"]
        if is_async_context_function(func):
            if returns is None:
                raise GeneratorError(f"{func.__qualname__}: missing return annotation")
            inner = unwrap_awaitable(returns)
            if classify_return(names, inner, self.wrapped)[0] != "direct":
                raise GeneratorError(f"{func.__qualname__}: unsupported {returns!r}")
            manager = self.translator._named("contextlib", "AbstractContextManager")
            inner_sync = self.translator.annotation(names, inner, param=False)
            return f"{manager.id}[{inner_sync}]", self.convert("context", None, direct)
        kind, sync_class = classify_return(names, returns, self.wrapped)
        expr = direct
        if inspect.iscoroutinefunction(func):
            expr = run
        elif kind == "await":
            # A plain def that returns an awaitable: await it on the loop.
            assert returns is not None
            inner = unwrap_awaitable(returns)
            kind, sync_class = classify_return(names, inner, self.wrapped)
            expr = run
        return sync_returns, self.convert(kind, sync_class, expr, sync_returns)

    def accessor(self, plan: ClassPlan, member: Member) -> list[str]:
        names = module_names(member.module)
        if member.kind == "attribute":
            text, doc = member.annotation, None
        else:
            node = function_node(member.function)
            text = ast.unparse(node.returns) if node.returns is not None else None
            doc = member.function.__doc__
        kind, sync_class = classify_return(names, text, self.wrapped)
        if kind in {"await", "context"}:
            raise GeneratorError(f"{plan.async_cls.__name__}.{member.name}: {text}")
        decorator = "@property"
        if member.kind == "cached_property":
            decorator = f"@{self.functools()}.cached_property"
        sync_returns = None
        arrow = ""
        if text is not None:
            sync_returns = self.translator.annotation(names, text, param=False)
            arrow = f" -> {sync_returns}"
        lines = [f"    {decorator}", f"    def {member.sync_name}(self){arrow}:"]
        lines += docstring_literal(doc, "        ")
        expr = f"self._async.{member.name}"
        body = self.convert(kind, sync_class, expr, sync_returns)
        lines += [f"        {line}" for line in body]
        return lines

    def init(self, plan: ClassPlan) -> list[str]:
        init = vars(plan.async_cls)["__init__"]
        params, forward = self.parameters(module_names(plan.async_cls.__module__), init)
        self.imports.add(
            plan.async_cls.__module__,
            plan.async_cls.__name__,
            plan.async_cls.__name__,
            runtime=True,
        )
        runner = self.helper("SyncRunner")
        signature = ", ".join(["self", *params])
        created = f"{plan.async_cls.__name__}({', '.join(forward)})"
        return [
            f"    def __init__({signature}) -> None:",
            f"        super().__init__({runner}(), {created})",
        ]

    def klass(self, plan: ClassPlan, *, root: bool) -> list[str]:
        cls = plan.async_cls
        base = self.helper("SyncWrapper")
        self.imports.add(cls.__module__, cls.__name__, cls.__name__, runtime=root)
        parameters = [p.__name__ for p in getattr(cls, "__parameters__", ())]
        for parameter in getattr(cls, "__parameters__", ()):
            self.imports.typevars[parameter.__name__] = parameter
        wrapped = cls.__name__
        bases = [f'{base}["{wrapped}"]']
        if parameters:
            self.imports.add("typing", "Generic", "Generic", runtime=True)
            bases = [f'{base}["{wrapped}[{", ".join(parameters)}]"]']
            bases.append(f"Generic[{', '.join(parameters)}]")
        lines = [f"class {plan.sync_name}({', '.join(bases)}):"]
        summary = f"Sync twin of `{wrapped}`; calls run on the client's event loop."
        doc = summary + ("\n\n" + inspect.cleandoc(cls.__doc__) if cls.__doc__ else "")
        lines += docstring_literal(doc, "    ")
        wrapped_type = f"{wrapped}[{', '.join(parameters)}]" if parameters else wrapped
        lines += ["", f"    _async: {wrapped_type}"]
        if root:
            lines += ["", *self.init(plan)]
        for member in plan.members:
            lines.append("")
            if member.kind == "function":
                lines += self.function(plan, member, root=root)
            else:
                lines += self.accessor(plan, member)
        return lines


def returns_self(names: ModuleNames, plan: ClassPlan, returns: str | None) -> bool:
    """Whether a return annotation names the class that defines the method."""
    if returns is None:
        return False
    if returns in {"Self", "typing.Self"}:
        return True
    node = ast.parse(returns, mode="eval").body
    return bool(resolve_node(names, node) is plan.async_cls)


def referenced_wrapped(
    names: ModuleNames, text: str, wrapped: dict[type, str]
) -> Iterator[type]:
    for found in referenced_classes(names, text):
        if found in wrapped:
            yield found


def render_module(root: type) -> str:
    plans, wrapped = plan_classes(root)
    emitter = Emitter(plans, wrapped)
    emitter.imports.add("typing", "Any", "Any", runtime=False)
    classes: list[str] = []
    for index, plan in enumerate(plans):
        classes += ["", "", *emitter.klass(plan, root=index == 0)]
    runtime, typing_only = emitter.imports.render()
    sources = sorted({plan.async_cls.__module__ for plan in plans})
    header = [
        "# Generated by scripts/generate_sync.py from the async client in",
        *[f"#   {source}" for source in sources],
        "# Do not edit: change the async code and run",
        "# `python scripts/generate_sync.py` (CI runs it with --check).",
        '"""The sync client: `MaestroClient` and its sub-clients."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    lines = header + runtime
    if emitter.imports.typevars:
        lines.append("from typing import TypeVar")
    if typing_only:
        lines += ["from typing import TYPE_CHECKING", "", "if TYPE_CHECKING:"]
        lines += [f"    {line}" for line in typing_only]
    lines += ["", f"__all__ = {sorted(plan.sync_name for plan in plans)!r}", ""]
    for name, typevar in sorted(emitter.imports.typevars.items()):
        lines.append(typevar_definition(name, typevar))
    classes += ["", "", *class_table(plans[1:])]
    return "\n".join(lines + classes) + "\n"


def class_table(plans: list[ClassPlan]) -> list[str]:
    """Return the lines of the dict that `convert_nested` uses to find sync classes."""
    lines = [
        "# Async class (module and qualified name) -> sync class, for results",
        "# that carry async objects inside other values.",
        f"{CLASS_TABLE}: dict[tuple[str, str], type[SyncWrapper[Any]]] = {{",
    ]
    for plan in plans:
        cls = plan.async_cls
        key = f'("{cls.__module__}", "{cls.__qualname__}")'
        lines.append(f"    {key}: {plan.sync_name},")
    return [*lines, "}"]


def typevar_definition(name: str, typevar: typing.TypeVar) -> str:
    if typevar.__bound__ is not None or typevar.__constraints__:
        raise GeneratorError(f"TypeVar {name} with a bound or constraints")
    variance = ""
    if typevar.__covariant__:
        variance = ", covariant=True"
    elif typevar.__contravariant__:
        variance = ", contravariant=True"
    return f'{name} = TypeVar("{name}"{variance})'


def ruff(args: list[str], source: str, path: Path) -> str:
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(path), "-"]
    done = subprocess.run(
        command, input=source, capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise GeneratorError(f"ruff {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def generate(root: type | None = None, path: Path = OUTPUT) -> str:
    """Return the formatted source of the sync module for `root`."""
    if root is None:
        from maestro_ml_async._client import AsyncMaestroClient

        root = AsyncMaestroClient
    source = render_module(root)
    source = ruff(["check", "--fix", "--select", "I", "--quiet"], source, path)
    return ruff(["format", "--quiet"], source, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit with status 1 when the checked-in module differs from a fresh one",
    )
    parser.add_argument("--output", type=Path, default=OUTPUT, help="file to write")
    options = parser.parse_args(argv)
    try:
        source = generate(path=options.output)
    except GeneratorError as exc:
        print(f"generate_sync: error: {exc}", file=sys.stderr)
        return 2
    current = options.output.read_text() if options.output.exists() else None
    if options.check:
        if current != source:
            print(
                f"generate_sync: {options.output} is stale; regenerate it with "
                "`python scripts/generate_sync.py` and commit the result",
                file=sys.stderr,
            )
            return 1
        return 0
    if current != source:
        options.output.write_text(source)
        print(f"wrote {options.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
