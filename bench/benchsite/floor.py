"""The floor: the least a Django receiver can do with a callback.

Parse the JSON body and insert it as one row, through the same server, middleware, settings and
database as the real receiver. ``bench/run.py`` creates its table ``bench_floor``
(id, command, payload jsonb, received_at) with raw SQL, so it needs no migration.
"""

import json

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpResponse
from django.views.decorators.csrf import csrf_exempt

REPLY = b'{"actionCode":0,"errCode":0,"errMsg":"","errDlt":"","nextCode":0}'


@csrf_exempt
@login_not_required
def floor(request, command):
    payload = json.loads(request.body)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO bench_floor (command, payload) VALUES (%s, %s)",
            [command, json.dumps(payload)],
        )
    return HttpResponse(REPLY, content_type="application/json")
