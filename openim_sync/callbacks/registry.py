"""Which serializer and handler apply each command, under every name a server sends.

Adding a command is one serializer, one handler and one ``@handles(...)`` line::

    @handles(OPENIM, "callbackAfterQuitGroupCommand", "callbackQuitGroupCommand",
             serializer=QuitGroupSerializer)
    def quit_group(data, ctx):
        return [Change(GroupMember, {...}, present=False, removed_reason="quit")]

Commands the mirror does not need are registered with :func:`ignore`, so they are stored and
answered with success but change nothing.
"""

from dataclasses import dataclass
from importlib import import_module
from typing import Any

BUILTIN_MODULES = (
    "openim_sync.callbacks.users",
    "openim_sync.callbacks.groups",
    "openim_sync.callbacks.members",
    "openim_sync.callbacks.friends",
    "openim_sync.callbacks.presence",
    "openim_sync.callbacks.ignored",
)


@dataclass(frozen=True)
class CommandSpec:
    protocol: str
    name: str
    serializer: Any = None
    handler: Any = None
    #: Payload field holding the event's own time or sequence, used as its version.
    version_field: str | None = None
    ignored_reason: str = ""

    @property
    def ignored(self):
        return self.handler is None


@dataclass(frozen=True)
class Context:
    """What a handler may know beyond the validated payload."""

    event: Any
    version: int
    command: str

    @property
    def query(self):
        return self.event.query or {}


_registry: dict[tuple[str, str], CommandSpec] = {}


def handles(protocol, *names, serializer, version_field=None):
    """Register the decorated function as the handler of ``names`` (the first is canonical)."""

    def decorator(handler):
        for name in names:
            _register(CommandSpec(protocol, name, serializer, handler, version_field))
        return handler

    return decorator


def ignore(protocol, names, reason):
    for name in names:
        _register(CommandSpec(protocol, name, ignored_reason=reason))


def _register(spec):
    key = (spec.protocol, spec.name)
    existing = _registry.get(key)
    if existing is not None and existing != spec:
        raise ValueError(f"{spec.protocol} command {spec.name!r} is registered twice")
    _registry[key] = spec


_validators = {}


def validate(spec, payload):
    """The validated data of ``payload``; raises DRF's ``ValidationError``.

    One serializer instance per command is bound once and reused: building a serializer's
    fields costs far more than validating one payload.
    """
    serializer = _validators.get(spec.serializer)
    if serializer is None:
        serializer = _validators[spec.serializer] = spec.serializer()
    return serializer.run_validation(payload)


def lookup(protocol, command):
    return _registry.get((protocol, command))


def commands(protocol=None):
    return sorted(
        (spec for spec in _registry.values() if protocol in (None, spec.protocol)),
        key=lambda spec: (spec.protocol, spec.name),
    )


def load_builtin_handlers():
    for module in BUILTIN_MODULES:
        import_module(module)
