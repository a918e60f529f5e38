"""Thin callback views: route and authenticate, then hand the request to the pipeline."""

from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from openim_sync import pipeline
from openim_sync.delivery import Delivery
from openim_sync.exceptions import CallbackError
from openim_sync.protocols import ADAPTERS
from openim_sync.protocols.base import parse_query


@method_decorator([csrf_exempt, login_not_required, transaction.non_atomic_requests], "dispatch")
class CallbackView(View):
    """Receives one protocol's callbacks. Only POST; the reply is always the protocol's envelope."""

    protocol = ""
    http_method_names = ["post"]

    @property
    def adapter(self):
        return ADAPTERS[self.protocol]

    def post(self, request, path=""):
        adapter = self.adapter
        try:
            request.GET = parse_query(request)
            route = adapter.route(request, path or "")
            adapter.authenticate(request, route)
            delivery = Delivery.from_request(adapter.name, request, route)
            outcome = pipeline.receive(delivery)
        except CallbackError as exc:
            response = adapter.reply(exc.status, exc.message)
            if getattr(exc, "challenge", ""):
                response["WWW-Authenticate"] = exc.challenge
            return response
        return adapter.reply(outcome.http_status, outcome.reason)

    def http_method_not_allowed(self, request, *args, **kwargs):
        response = self.adapter.reply(405, f"Method {request.method} is not allowed: use POST.")
        response["Allow"] = "POST"
        return response


class OpenIMCallbackView(CallbackView):
    protocol = "openim"


class TencentCallbackView(CallbackView):
    protocol = "tencent"
