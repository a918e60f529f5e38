"""Errors raised while receiving a callback; each knows its HTTP status.

Only :class:`BadDelivery`, :class:`PayloadTooLarge` and :class:`LengthRequired` happen after
authentication, so only they leave a stored (``rejected``) event behind.
"""


class CallbackError(Exception):
    status = 400

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class BadDelivery(CallbackError):
    """The request is authentic but cannot be understood (bad JSON, wrong types, ...): 400."""


class PayloadTooLarge(CallbackError):
    status = 413


class LengthRequired(CallbackError):
    """A body without Content-Length that the WSGI server cannot hand over (no
    ``wsgi.input_terminated``): 411."""

    status = 411


class NotFound(CallbackError):
    status = 404


class AuthenticationFailed(CallbackError):
    """Missing or wrong credentials (secret, basic auth, Sign, RequestTime): 401.

    ``challenge`` becomes the ``WWW-Authenticate`` header (set when basic auth is accepted).
    """

    status = 401

    def __init__(self, message, challenge=""):
        super().__init__(message)
        self.challenge = challenge


class PermissionDenied(CallbackError):
    """Credentials are irrelevant: the client IP or the SdkAppid is not ours: 403."""

    status = 403


class DatabaseUnavailable(CallbackError):
    status = 503
