"""Signals for the host project, sent after the surrounding transaction commits.

``event_received(sender=CallbackEvent, event)``: a delivery was stored (before it is applied).
``event_processed(sender=CallbackEvent, event, command, status, changed)``: the pipeline finished
with the event; ``changed`` lists the mirror rows it wrote (empty unless status is processed).
"""

from django.dispatch import Signal

event_received = Signal()
event_processed = Signal()
