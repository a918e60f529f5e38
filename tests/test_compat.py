"""openim_sync.compat: one import for django.tasks (Django 6.x) and the django-tasks backport (5.2)."""

import django
import pytest

from openim_sync import compat

IMMEDIATE = {
    "django.tasks": "django.tasks.backends.immediate.ImmediateBackend",
    "django_tasks": "django_tasks.backends.immediate.ImmediateBackend",
}


@compat.task
def add(a, b):
    return a + b


def test_the_source_matches_the_django_version():
    expected = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"
    assert expected == compat.TASKS_SOURCE


def test_a_task_defined_through_compat_runs_on_the_configured_backend(settings):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE[compat.TASKS_SOURCE]}}
    result = add.enqueue(2, 3)
    assert result.status == compat.TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5


def test_an_unknown_backend_alias_raises_the_compat_exception(settings):
    settings.TASKS = {"default": {"BACKEND": IMMEDIATE[compat.TASKS_SOURCE]}}
    with pytest.raises(compat.InvalidTaskBackend):
        compat.task_backends["nope"]


def test_the_apps_task_module_uses_compat():
    from openim_sync import tasks

    assert isinstance(tasks.drain_events, compat.Task)
