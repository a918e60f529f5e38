"""A read-only REST API over the mirror (Django REST framework), with an OpenAPI 3.1 schema.

Included by ``openim_sync.urls`` at ``api/`` (``/openim/api/users/`` with the README's include);
a host may include ``openim_sync.api.urls`` on its own instead. docs/api.md describes it.
"""
