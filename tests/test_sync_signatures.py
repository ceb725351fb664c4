"""The generated sync tree mirrors the async tree member by member.

One test compares signatures (names, kinds, defaults, mapped annotations,
docstrings) of every public member; another calls every sync twin on a fake
async object and checks that each argument reaches the async member under its
own name and that the result comes back in its sync form.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import maestro_ml_async._sync._client as generated
from maestro_ml_async import AsyncMaestroClient, MaestroClient
from maestro_ml_async._pagination import AsyncPager, Page
from maestro_ml_async._sync._adapters import Pager, SyncWrapper
from maestro_ml_async._sync._runtime import SyncRunner


def _load_sync_wording() -> list[tuple[str, str]]:
    path = Path(__file__).parents[1] / "scripts" / "generate_sync.py"
    spec = importlib.util.spec_from_file_location("_generate_sync_wording", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # The script imports its helper modules from its own folder.
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return list(module.SYNC_WORDING)


SYNC_WORDING = _load_sync_wording()


def sync_doc(doc: str | None) -> str | None:
    """Return an async docstring as the generator words it for the sync twin."""
    if doc is None:
        return None
    for phrase, replacement in SYNC_WORDING:
        doc = doc.replace(phrase, replacement)
    return doc


PACKAGE = "maestro_ml_async"
RENAMED = {
    "aclose": "close",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "__aiter__": "__iter__",
}
NOT_MIRRORED = {"__anext__", "__await__"}


def typing_namespace() -> dict[str, Any]:
    """The generated module's globals plus its TYPE_CHECKING imports."""
    namespace = dict(vars(generated))
    tree = ast.parse(inspect.getsource(generated))
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            code = compile(ast.Module(node.body, []), generated.__file__, "exec")
            exec(code, namespace)
    return namespace


def class_pairs() -> list[tuple[type, type]]:
    namespace = typing_namespace()
    pairs = []
    for name in generated.__all__:
        sync_cls = getattr(generated, name)
        annotation = sync_cls.__annotations__["_async"]
        async_cls = eval(annotation.split("[")[0], namespace)
        pairs.append((async_cls, sync_cls))
    return pairs


PAIRS = class_pairs()
SYNC_NAMES = {async_cls.__name__: sync_cls.__name__ for async_cls, sync_cls in PAIRS}


def in_package(obj: Any) -> bool:
    module = getattr(obj, "__module__", "") or ""
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def public_members(cls: type) -> dict[str, Any]:
    """Public members the package defines on `cls`: name -> static value.

    Functions, properties and annotated attributes count. Static and class
    methods, plain class constants and functions that a library adds (such as
    pydantic's ``model_post_init``) have no sync twin.
    """
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not in_package(klass):
            continue
        for name, value in vars(klass).items():
            if name in NOT_MIRRORED or (name.startswith("_") and name not in RENAMED):
                continue
            if inspect.isfunction(value) and in_package(value):
                members[name] = value
            elif isinstance(value, property | functools.cached_property):
                members[name] = value
        for name in vars(klass).get("__annotations__", {}):
            if not name.startswith("_") and name != "model_config":
                members.setdefault(name, "attribute")
    for name in getattr(cls, "model_fields", {}):
        members.setdefault(name, "attribute")
    return members


def strip_generic(text: str, name: str) -> str:
    """Replace ``name[inner]`` (brackets balanced) by ``inner`` everywhere."""
    pattern = re.compile(rf"\b{name}\[")
    while match := pattern.search(text):
        depth, index = 1, match.end()
        while depth:
            depth += {"[": 1, "]": -1}.get(text[index], 0)
            index += 1
        text = text[: match.start()] + text[match.end() : index - 1] + text[index:]
    return text


def to_sync_annotation(text: str) -> str:
    text = strip_generic(text, "Awaitable")
    text = re.sub(r"\bAsyncIterator\[", "Iterator[", text)
    text = re.sub(r"\bAsyncIterable\[", "Iterable[", text)
    text = re.sub(r"\bAsyncPager\[", "Pager[", text)
    for async_name, sync_name in SYNC_NAMES.items():
        text = re.sub(rf"\b{async_name}\b", sync_name, text)
    return text


def is_async_context(func: Any) -> bool:
    wrapped = getattr(func, "__wrapped__", None)
    return wrapped is not None and inspect.isasyncgenfunction(wrapped)


def expected_return(async_cls: type, name: str, func: Any) -> str:
    text = inspect.signature(func).return_annotation
    if name == "__aenter__":
        return SYNC_NAMES[async_cls.__name__]
    if is_async_context(func):
        return re.sub(r"^AsyncIterator\[", "AbstractContextManager[", text)
    return to_sync_annotation(text)


def test_every_sub_client_is_mirrored() -> None:
    async_client = AsyncMaestroClient(mlflow_uri="http://127.0.0.1:9")
    sync_client = MaestroClient(mlflow_uri="http://127.0.0.1:9")
    try:
        for name, value in vars(AsyncMaestroClient).items():
            if not isinstance(value, functools.cached_property):
                continue
            try:
                sub_client = getattr(async_client, name)
            except ModuleNotFoundError:
                # The async side cannot build it either (its module is missing).
                assert not hasattr(MaestroClient, name)
                continue
            sync_sub_client = getattr(sync_client, name)
            assert isinstance(sync_sub_client, SyncWrapper), name
            assert (type(sub_client), type(sync_sub_client)) in PAIRS, name
    finally:
        sync_client.close()


@pytest.mark.parametrize(
    ("async_cls", "sync_cls"), PAIRS, ids=[sync.__name__ for _, sync in PAIRS]
)
def test_members_and_signatures_match(async_cls: type, sync_cls: type) -> None:
    async_members = public_members(async_cls)
    if async_cls is AsyncMaestroClient:
        async_members["config"] = "attribute"
    expected_names = {RENAMED.get(name, name) for name in async_members}
    sync_names = {
        name
        for name in dir(sync_cls)
        if not name.startswith("_") or name in RENAMED.values()
    }
    missing = expected_names - sync_names
    assert not missing, f"{sync_cls.__name__} lacks {sorted(missing)}"
    for name, value in async_members.items():
        sync_value = inspect.getattr_static(sync_cls, RENAMED.get(name, name))
        if not inspect.isfunction(value):
            assert isinstance(sync_value, property | functools.cached_property), name
            continue
        check_function(async_cls, name, value, sync_value)


def check_function(async_cls: type, name: str, func: Any, sync_func: Any) -> None:
    label = f"{async_cls.__name__}.{name}"
    assert inspect.isfunction(sync_func), label
    assert not inspect.iscoroutinefunction(sync_func), label
    assert not inspect.isasyncgenfunction(sync_func), label
    async_params = list(inspect.signature(func).parameters.values())
    sync_signature = inspect.signature(sync_func)
    sync_params = list(sync_signature.parameters.values())
    assert [p.name for p in sync_params] == [p.name for p in async_params], label
    for async_param, sync_param in zip(async_params, sync_params, strict=True):
        assert sync_param.kind == async_param.kind, (label, async_param.name)
        assert sync_param.default == async_param.default, (label, async_param.name)
        if async_param.annotation is not inspect.Parameter.empty:
            expected = to_sync_annotation(async_param.annotation)
            assert sync_param.annotation == expected, (label, async_param.name)
    if inspect.signature(func).return_annotation is not inspect.Signature.empty:
        expected = expected_return(async_cls, name, func)
        assert sync_signature.return_annotation == expected, label
    for marker in ("Awaitable", "Coroutine", "AsyncIterator", "AsyncPager"):
        assert marker not in str(sync_signature.return_annotation), label
    if func.__doc__:
        assert inspect.getdoc(sync_func) == sync_doc(inspect.getdoc(func)), label


# --- forwarding ----------------------------------------------------------------


class Token:
    """A distinct argument or result value, named for failure messages."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Token({self.name!r})"


RESULT = Token("result")


class FakeAsync:
    """Stands in for an instance of `cls`: records calls, returns `RESULT`."""

    def __init__(self, cls: type) -> None:
        self._cls = cls
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        static = inspect.getattr_static(self._cls, name, None)
        if not inspect.isfunction(static):
            return RESULT
        calls = self.calls

        def record(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            calls.append((name, args, kwargs))

        if is_async_context(static):

            @asynccontextmanager
            async def context(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                record(args, kwargs)
                yield RESULT

            return context
        if inspect.isasyncgenfunction(static):

            async def stream(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
                record(args, kwargs)
                yield RESULT

            return stream
        if inspect.iscoroutinefunction(static):

            async def call(*args: Any, **kwargs: Any) -> Any:
                record(args, kwargs)
                return RESULT

            return call
        return functools.partial(plain_result, record, static)


def plain_result(record: Any, static: Any, *args: Any, **kwargs: Any) -> Any:
    record(args, kwargs)
    annotation = str(inspect.signature(static).return_annotation)
    if annotation.startswith("AsyncPager"):

        async def fetch(token: str | None) -> Page[Any]:
            return Page([RESULT])

        return AsyncPager(fetch)
    if annotation.startswith(("AsyncIterator", "AsyncGenerator")):

        async def stream() -> AsyncIterator[Any]:
            yield RESULT

        return stream()
    return RESULT


def arguments_for(func: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """Return args and kwargs for `func`, and the values each name must receive."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    expected: dict[str, Any] = {}
    for param in list(inspect.signature(func).parameters.values())[1:]:
        value = Token(param.name)
        if "Callable[" in str(param.annotation):
            value = functools.partial(lambda *items: items)
        if param.kind is param.POSITIONAL_ONLY:
            args.append(value)
        elif param.kind is param.VAR_POSITIONAL:
            args.extend([value, value])
            value = (value, value)
        elif param.kind is param.VAR_KEYWORD:
            kwargs["extra_option"] = value
            value = {"extra_option": value}
        else:
            kwargs[param.name] = value
        expected[param.name] = value
    return args, kwargs, expected


def sync_form(value: Any) -> Any:
    """Reduce a sync result to the async values it carries."""
    if isinstance(value, SyncWrapper):
        return value._async
    if isinstance(value, Pager):
        return [sync_form(item) for item in value.to_list()]
    if isinstance(value, AbstractContextManager):
        with value as entered:
            return sync_form(entered)
    if isinstance(value, Iterator):
        return [sync_form(item) for item in value]
    if isinstance(value, list):
        return [sync_form(item) for item in value]
    return value


FORWARDED = [
    (async_cls, sync_cls, name)
    for async_cls, sync_cls in PAIRS
    for name, value in sorted(public_members(async_cls).items())
    if inspect.isfunction(value)
    and not (async_cls is AsyncMaestroClient and name in {"aclose", "__aexit__"})
]


@pytest.fixture(scope="module")
def runner() -> Iterator[SyncRunner]:
    sync_runner = SyncRunner()
    yield sync_runner
    sync_runner.close()


@pytest.mark.parametrize(
    ("async_cls", "sync_cls", "name"),
    FORWARDED,
    ids=[f"{sync.__name__}.{name}" for _, sync, name in FORWARDED],
)
def test_twin_forwards_arguments(
    runner: SyncRunner, async_cls: type, sync_cls: type, name: str
) -> None:
    fake = FakeAsync(async_cls)
    sync_object = sync_cls.__new__(sync_cls)
    SyncWrapper.__init__(sync_object, runner, fake)
    async_func = inspect.getattr_static(async_cls, name)
    args, kwargs, expected = arguments_for(async_func)
    result = getattr(sync_object, RENAMED.get(name, name))(*args, **kwargs)
    if name == "__aenter__":
        assert result is sync_object
    else:
        outcome = sync_form(result)
        assert outcome in (RESULT, [RESULT]), f"{name} returned {result!r}"
    assert len(fake.calls) == 1
    called, call_args, call_kwargs = fake.calls[0]
    assert called == name
    signature = inspect.signature(async_func)
    without_self = signature.replace(parameters=list(signature.parameters.values())[1:])
    bound = without_self.bind(*call_args, **call_kwargs).arguments
    for param_name, value in expected.items():
        if callable(value) and not isinstance(value, Token):
            assert inspect.iscoroutinefunction(bound[param_name]), param_name
        else:
            assert bound[param_name] == value, param_name


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS, ids=SYNC_NAMES.values())
def test_properties_forward(
    runner: SyncRunner, async_cls: type, sync_cls: type
) -> None:
    fake = FakeAsync(async_cls)
    sync_object = sync_cls.__new__(sync_cls)
    SyncWrapper.__init__(sync_object, runner, fake)
    for name, value in public_members(async_cls).items():
        if inspect.isfunction(value):
            continue
        assert sync_form(getattr(sync_object, name)) is RESULT, name
    if async_cls is AsyncMaestroClient:
        assert sync_object.config is RESULT


def test_pager_mirrors_async_pager() -> None:
    for name in ("page", "to_list"):
        async_signature = inspect.signature(getattr(AsyncPager, name))
        sync_signature = inspect.signature(getattr(Pager, name))
        assert list(sync_signature.parameters) == list(async_signature.parameters)
        assert inspect.getdoc(getattr(Pager, name)) == inspect.getdoc(
            getattr(AsyncPager, name)
        )


def test_sync_docs_show_sync_usage() -> None:
    source = Path(generated.__file__).read_text()

    for phrase in ("``await ", "``async for ", "``async with ", "``await``"):
        assert phrase not in source, phrase
