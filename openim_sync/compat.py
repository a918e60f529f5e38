"""One import for background tasks on every supported Django.

``django.tasks`` is in Django from 6.0; on Django 5.2 LTS the same API comes from the
``django-tasks`` backport (``pip install "django-openim-sync[tasks-backport]"``). Import from here,
never from either package directly::

    from openim_sync.compat import task, task_backends

Both read the ``TASKS`` setting the same way, so a host's ``TASKS`` works unchanged when it
upgrades from 5.2 to 6.x. ``TASKS_SOURCE`` says which one was found ("django.tasks" or
"django_tasks").
"""

try:
    from django.tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        Task,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.exceptions import InvalidTaskBackend

    TASKS_SOURCE = "django.tasks"
except ImportError:  # Django 5.2: the backport
    try:
        from django_tasks import (
            DEFAULT_TASK_BACKEND_ALIAS,
            TaskResult,
            TaskResultStatus,
            default_task_backend,
            task,
            task_backends,
        )
        from django_tasks.base import Task
        from django_tasks.exceptions import InvalidTaskBackendError as InvalidTaskBackend
    except ImportError as exc:
        import django

        raise ImportError(
            f"openim-sync's deferred processing needs background tasks: Django "
            f"{django.get_version()} has no django.tasks (it is in Django 6.0 and newer). "
            'On Django 5.2, install the backport: pip install "django-openim-sync[tasks-backport]".'
        ) from exc

    TASKS_SOURCE = "django_tasks"

__all__ = [
    "DEFAULT_TASK_BACKEND_ALIAS",
    "TASKS_SOURCE",
    "InvalidTaskBackend",
    "Task",
    "TaskResult",
    "TaskResultStatus",
    "default_task_backend",
    "task",
    "task_backends",
]
