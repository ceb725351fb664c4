"""Tests of the input checks that run before any request."""

from __future__ import annotations

import pytest

from maestro_ml_async import ValidationException
from maestro_ml_async._validation import (
    check_choice,
    check_entity_key,
    check_kubernetes_name,
    check_stage,
)
from maestro_ml_async.types.tracking import RunStatus


def test_stage_python_none_explained() -> None:
    with pytest.raises(ValidationException, match=r"pass 'None' \(in quotes\)"):
        check_stage(None)

    assert check_stage("none") == "None"
    assert check_stage(" PRODUCTION ") == "Production"


def test_choice_accepts_members_and_any_case() -> None:
    assert check_choice(RunStatus, RunStatus.FAILED, what="status") is RunStatus.FAILED
    assert check_choice(RunStatus, " finished ", what="status") is RunStatus.FINISHED


@pytest.mark.parametrize("value", ["DONE", "", None, 3])
def test_choice_lists_allowed_values(value: object) -> None:
    with pytest.raises(ValidationException) as caught:
        check_choice(RunStatus, value, what="status")

    message = str(caught.value)
    assert message.startswith("status must be one of RUNNING, SCHEDULED")
    assert repr(value) in message


ENTITY_KEYS = [
    "loss",
    "train/loss",
    "val loss:epoch-1.5",
    "ünïcødé_ключ",
    "key ",
    "a..b",
    "bad!key",
    "k?",
    "a//b",
    "x/",
    "./x",
    "/abs",
    "..up",
    ".",
    "tab\tkey",
    "line\n",
]


@pytest.mark.parametrize("key", ENTITY_KEYS)
def test_entity_key_matches_mlflow_rule(key: str) -> None:
    # mlflow is a test dependency only; its server runs this same check.
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_tag_name

    try:
        _validate_tag_name(key)
        server_accepts = True
    except MlflowException:
        server_accepts = False

    if server_accepts:
        assert check_entity_key(key) == key
    else:
        with pytest.raises(ValidationException, match="is invalid"):
            check_entity_key(key)


@pytest.mark.parametrize("max_length", [63, 253])
@pytest.mark.parametrize("name", ["ns\n", "a.b\n", "ok-name\n"])
def test_kubernetes_name_rejects_trailing_newline(name: str, max_length: int) -> None:
    # The API server anchors its name pattern at the end of the text, so a
    # name that ends in a newline is refused there after a round trip.
    with pytest.raises(ValidationException, match="not a valid Kubernetes name"):
        check_kubernetes_name(name, max_length=max_length)


def test_kubernetes_name_accepts_label_and_subdomain() -> None:
    assert check_kubernetes_name("ml-platform", max_length=63) == "ml-platform"
    assert check_kubernetes_name("a.b-c", max_length=253) == "a.b-c"
