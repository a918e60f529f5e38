"""Deferred processing: with ``PROCESSING = "deferred"`` a django.tasks worker applies events."""

from django.tasks import task

from openim_sync.conf import app_settings


@task
def process_event(event_id):
    from openim_sync import pipeline
    from openim_sync.models import CallbackEvent

    event = CallbackEvent.objects.filter(pk=event_id).first()
    if event is None:
        return "missing"
    return pipeline.process(event).status


def enqueue(event):
    process_event.using(backend=app_settings.TASK_BACKEND).enqueue(event.pk)
