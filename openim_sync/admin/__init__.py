from . import events, mirror  # noqa: F401
