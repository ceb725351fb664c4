"""scripts/generate_sync.py on a fake async API that uses every supported shape,
and its --check mode on the real client."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"

FAKE_API = textwrap.dedent(
    '''
    """A fake async API for the generator tests."""

    from __future__ import annotations

    import enum
    import functools
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import asynccontextmanager
    from typing import Generic, TypeVar

    from maestro_ml_async._pagination import AsyncPager, Page

    T = TypeVar("T")
    LIMIT = 7
    events: list[str] = []


    class Stage(enum.Enum):
        DRAFT = "draft"
        FINAL = "final"


    class AsyncJob:
        """A job whose methods are async."""

        name: str

        def __init__(self, name: str) -> None:
            self.name = name

        async def wait(self, timeout: float = 1.0) -> AsyncJob:
            """Wait for the job."""
            return self

        async def logs(self) -> AsyncIterator[str]:
            try:
                for index in range(3):
                    yield f"{self.name}:{index}"
            finally:
                events.append(f"logs closed {self.name}")


    class AsyncBox(Generic[T]):
        """Holds one value."""

        def __init__(self, value: T) -> None:
            self._value = value

        async def get(self) -> T:
            return self._value


    class AsyncThings:
        """A sub-client."""

        async def get(
            self, name: str, /, limit: int = LIMIT, *, stage: Stage = Stage.FINAL
        ) -> AsyncJob:
            """Fetch one job."""
            return AsyncJob(f"{name}-{limit}-{stage.value}")

        async def maybe(self, name: str | None) -> AsyncJob | None:
            return None if name is None else AsyncJob(name)

        async def many(self, *names: str) -> list[AsyncJob]:
            return [AsyncJob(name) for name in names]

        async def mixed(self, **groups: str) -> dict[str, AsyncJob | int]:
            return {key: AsyncJob(value) for key, value in groups.items()} | {"n": 1}

        async def stream(self, count: int) -> AsyncIterator[int]:
            try:
                for index in range(count):
                    yield index
            finally:
                events.append("stream closed")

        async def job_stream(self) -> AsyncIterator[AsyncJob]:
            yield AsyncJob("streamed")

        def jobs(self, total: int = 5) -> AsyncPager[AsyncJob]:
            async def fetch(token: str | None) -> Page[AsyncJob]:
                start = int(token or 0)
                items = [AsyncJob(f"j{i}") for i in range(start, min(start + 2, total))]
                following = str(start + 2) if start + 2 < total else None
                return Page(items, following)

            return AsyncPager(fetch)

        def numbers(self) -> AsyncIterator[int]:
            return self.stream(2)

        @asynccontextmanager
        async def session(self, label: str = "s") -> AsyncIterator[str]:
            events.append(f"enter {label}")
            yield label.upper()
            events.append(f"exit {label}")

        def later(self, value: int) -> Awaitable[int]:
            async def compute() -> int:
                return value * 10

            return compute()

        async def apply(
            self, func: Callable[[int], Awaitable[int]], value: int
        ) -> int:
            return await func(value)

        async def apply_maybe(
            self, value: int, func: Callable[[int], Awaitable[int]] | None = None
        ) -> int:
            return value if func is None else await func(value)

        async def take(self, job: AsyncJob) -> str:
            return type(job).__name__ + ":" + job.name

        def plain(self, value: int) -> int:
            return value + 1

        @property
        def label(self) -> str:
            return "things"

        @staticmethod
        def helper() -> None:
            return None

        async def box(self, value: int) -> AsyncBox[int]:
            return AsyncBox(value)

        async def _private(self) -> None:
            return None


    class AsyncFakeClient:
        """The root of the fake API."""

        def __init__(self, url: str = "memory://", *, retries: int = 2) -> None:
            self.url: str = url
            self.retries = retries
            self._closed = False

        retries: int

        @functools.cached_property
        def things(self) -> AsyncThings:
            """The things."""
            return AsyncThings()

        @property
        def closed(self) -> bool:
            return self._closed

        async def aclose(self) -> None:
            self._closed = True
            events.append("client closed")

        async def __aenter__(self) -> AsyncFakeClient:
            return self

        async def __aexit__(self, *exc_info: object) -> None:
            await self.aclose()
    '''
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    folder = tmp_path_factory.mktemp("fake_api")
    (folder / "fake_async_api.py").write_text(FAKE_API)
    sys.path.insert(0, str(folder))
    sys.path.insert(0, str(SCRIPTS))
    model = importlib.import_module("_syncgen_model")
    generator = importlib.import_module("generate_sync")
    saved = (model.OUTPUT_MODULE, set(model.MIRRORED_PACKAGES))
    model.OUTPUT_MODULE = "fake_sync_client"
    model.MIRRORED_PACKAGES.add("fake_async_api")
    try:
        fake = importlib.import_module("fake_async_api")
        output = folder / "fake_sync_client.py"
        output.write_text(generator.generate(fake.AsyncFakeClient, output))
        yield importlib.import_module("fake_sync_client")
    finally:
        model.OUTPUT_MODULE = saved[0]
        model.MIRRORED_PACKAGES.clear()
        model.MIRRORED_PACKAGES.update(saved[1])
        sys.path.remove(str(folder))
        sys.path.remove(str(SCRIPTS))
        for name in ("fake_async_api", "fake_sync_client"):
            sys.modules.pop(name, None)


@pytest.fixture
def client(generated: ModuleType) -> Iterator[Any]:
    sync_client = generated.MaestroClient("memory://test", retries=4)
    yield sync_client
    sync_client.close()


def events() -> list[str]:
    return sys.modules["fake_async_api"].events  # type: ignore[no-any-return]


def test_generated_classes(generated: ModuleType) -> None:
    assert sorted(generated.__all__) == ["Box", "Job", "MaestroClient", "Things"]


def test_sync_client_import_skips_cluster_side() -> None:
    # Training and deployment types appear only in annotations, which the
    # generated module imports under TYPE_CHECKING.
    code = (
        "import sys, maestro_ml_async\n"
        "client = maestro_ml_async.MaestroClient(mlflow_uri='http://127.0.0.1:9')\n"
        "client.close()\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_root_copies_init_and_attributes(client: Any) -> None:
    assert client.url == "memory://test"
    assert client.retries == 4
    assert client.closed is False


def test_coroutine_result_wrapped(client: Any, generated: ModuleType) -> None:
    job = client.things.get("a", 3, stage=sys.modules["fake_async_api"].Stage.DRAFT)
    assert isinstance(job, generated.Job)
    assert job.name == "a-3-draft"
    assert client.things.get("b").name == "b-7-final"
    assert isinstance(job.wait(), generated.Job)


def test_optional_and_list_results(client: Any, generated: ModuleType) -> None:
    assert client.things.maybe(None) is None
    assert isinstance(client.things.maybe("m"), generated.Job)
    jobs = client.things.many("x", "y")
    assert [job.name for job in jobs] == ["x", "y"]
    assert all(isinstance(job, generated.Job) for job in jobs)


def test_nested_results_wrapped(client: Any, generated: ModuleType) -> None:
    result = client.things.mixed(first="f")
    assert isinstance(result["first"], generated.Job)
    assert result["n"] == 1


def test_async_generator_becomes_iterator(client: Any) -> None:
    assert list(client.things.stream(3)) == [0, 1, 2]
    for _ in client.things.stream(100):
        break
    assert events()[-1] == "stream closed"
    assert list(client.things.numbers()) == [0, 1]


def test_iterator_items_wrapped(client: Any, generated: ModuleType) -> None:
    (job,) = list(client.things.job_stream())
    assert isinstance(job, generated.Job)
    assert list(job.logs()) == ["streamed:0", "streamed:1", "streamed:2"]


def test_pager_items_wrapped(client: Any, generated: ModuleType) -> None:
    pager = client.things.jobs(total=5)
    assert len(pager) == 5
    assert isinstance(pager[4], generated.Job)
    assert pager.page("2").items[0].name == "j2"
    assert isinstance(pager.page().items[0], generated.Job)


def test_context_manager(client: Any) -> None:
    with client.things.session("abc") as value:
        assert value == "ABC"
        assert events()[-1] == "enter abc"
    assert events()[-1] == "exit abc"


def test_awaitable_returning_def(client: Any) -> None:
    assert client.things.later(4) == 40


def test_coroutine_function_parameter(client: Any) -> None:
    seen: list[str] = []

    def double(value: int) -> int:
        seen.append(threading.current_thread().name)
        return value * 2

    assert client.things.apply(double, 21) == 42
    assert seen[0].startswith("maestro-ml-sync-worker")
    assert client.things.apply_maybe(5) == 5
    assert client.things.apply_maybe(5, double) == 10


def test_wrapped_argument_unwrapped(client: Any) -> None:
    job = client.things.get("u")
    assert client.things.take(job) == "AsyncJob:u-7-final"


def test_plain_members(client: Any) -> None:
    assert client.things.plain(1) == 2
    assert client.things.label == "things"
    assert not hasattr(client.things, "helper")
    assert not hasattr(client.things, "_private")


def test_generic_class(client: Any, generated: ModuleType) -> None:
    box = client.things.box(9)
    assert isinstance(box, generated.Box)
    assert box.get() == 9


def test_with_block_closes(generated: ModuleType) -> None:
    with generated.MaestroClient() as sync_client:
        assert sync_client.things.plain(0) == 1
    assert events()[-1] == "client closed"
    assert sync_client.closed


def test_generated_source_formatted(generated: ModuleType) -> None:
    path = Path(generated.__file__)
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    source = path.read_text()
    assert source.startswith("# Generated by scripts/generate_sync.py")
    assert "Do not edit" in source


def test_check_reports_stale_module(tmp_path: Path) -> None:
    stale = tmp_path / "_client.py"
    stale.write_text("# an old version\n")
    command = [sys.executable, str(SCRIPTS / "generate_sync.py"), "--check"]
    done = subprocess.run(
        [*command, "--output", str(stale)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "is stale" in done.stderr
    assert "python scripts/generate_sync.py" in done.stderr
