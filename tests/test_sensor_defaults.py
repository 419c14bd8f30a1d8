"""The sensor's defaults and its one poll-interval rule (#14), and its argument errors (#16).

Built as a DAG file builds them: the sensor's constructor, inside a DAG with default_args.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from airflow_provider_importexport.sensors.importexport import ImportExportJobSensor


def sensor(**kwargs: Any) -> ImportExportJobSensor:
    kwargs.setdefault("deferrable", False)
    return ImportExportJobSensor(task_id="wait", job_id="ABCDE", **kwargs)


def in_dag(default_args: dict[str, Any], **kwargs: Any) -> ImportExportJobSensor:
    from airflow.sdk import DAG

    with DAG("defaults", schedule=None, start_date=dt.datetime(2026, 1, 1), default_args=default_args):
        return sensor(**kwargs)


def test_not_deferrable_reschedules_by_default_so_no_worker_slot_is_held() -> None:
    waiting = sensor()
    assert (waiting.mode, waiting.poke_interval, waiting.timeout) == ("reschedule", 900, 30 * 24 * 3600)


@pytest.mark.parametrize("mode", ["poke", "reschedule"])
def test_an_explicit_mode_wins(mode: str) -> None:
    assert sensor(mode=mode).mode == mode
    assert in_dag({"mode": mode}).mode == mode


def test_deferrable_keeps_poke_its_triggerer_does_the_waiting() -> None:
    assert sensor(deferrable=True).mode == "poke"


@pytest.mark.parametrize(
    ("kwargs", "interval"),
    [
        ({"waiter_delay": 60}, 60),
        ({"poke_interval": 30}, 30),
        ({"poke_interval": dt.timedelta(minutes=2)}, 120),
        ({"poke_interval": 45, "waiter_delay": 45}, 45),
        ({}, 900),
    ],
)
@pytest.mark.parametrize("deferrable", [True, False])
def test_one_poll_interval_in_every_mode(kwargs: dict[str, Any], interval: float, deferrable: bool) -> None:
    waiting = sensor(deferrable=deferrable, **kwargs)
    assert waiting.poke_interval == waiting.waiter_delay == interval


def test_a_conflict_between_the_two_names_is_an_error_naming_both() -> None:
    with pytest.raises(ValueError) as raised:
        sensor(poke_interval=30, waiter_delay=60)
    assert str(raised.value).startswith("waiter_delay=60 and poke_interval=30.0 are the same setting")
    assert "pass only one of them" in str(raised.value)


def test_the_tasks_own_interval_beats_default_args() -> None:
    assert in_dag({"poke_interval": 60}, waiter_delay=30).poke_interval == 30
    assert in_dag({"waiter_delay": 60}, poke_interval=30).poke_interval == 30
    assert in_dag({"poke_interval": 60}).poke_interval == 60
    assert in_dag({"timeout": 600}).timeout == 600


def test_timeout_or_attempts_not_both() -> None:
    assert sensor(waiter_delay=30, waiter_max_attempts=4).timeout == 120
    assert sensor(waiter_delay=30, waiter_max_attempts=1).timeout == 30  # one check is a valid wait
    with pytest.raises(ValueError, match=r"timeout=60 and waiter_max_attempts=4 both set how long"):
        sensor(waiter_delay=30, waiter_max_attempts=4, timeout=60)
    with pytest.raises(ValueError, match=r"waiter_max_attempts=0 is not valid: give a whole number, 1 or more"):
        sensor(waiter_max_attempts=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"waiter_delay": -5}, "waiter_delay=-5 is not valid: give a number of seconds, 0 or more."),
        ({"poke_interval": -1}, "poke_interval=-1 is not valid: give a number of seconds, 0 or more."),
        ({"timeout": -1}, "timeout=-1 is not valid: give a number of seconds, 0 or more."),
        (
            {"wait_for": "arived"},
            "wait_for='arived' is not valid: use 'arrival', 'completion' or 'return' (did you mean 'arrival'?).",
        ),
        (
            {"wait_for": "Completion"},
            "wait_for='Completion' is not valid: use 'arrival', 'completion' or 'return' (did you mean 'completion'?).",
        ),
        (
            {"on_success_with_errors": "warning"},
            "on_success_with_errors='warning' is not valid: use 'succeed', 'warn' or 'fail' (did you mean 'warn'?).",
        ),
        (
            {"mode": "reshedule"},
            "mode='reshedule' is not valid: use 'poke' or 'reschedule' (did you mean 'reschedule'?).",
        ),
        ({"wait_for": "tomorrow"}, "wait_for='tomorrow' is not valid: use 'arrival', 'completion' or 'return'."),
    ],
)
def test_argument_errors_name_the_users_argument_and_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        sensor(**kwargs)
    assert str(raised.value) == message
    if "waiter_delay" in kwargs:
        assert "poke_interval" not in str(raised.value)  # the user never passed it
