"""Property: whatever a sample of either protocol is mutated into (other types, sizes, nulls,
unicode, nesting, missing or extra keys), the receiver never answers 5xx, always answers with the
protocol's envelope (integer codes), stores the delivery exactly once, and changes nothing in the
mirror when it refuses the delivery.

Each sample is first delivered as it is (so mutants meet existing rows); each mutant is then
delivered in a savepoint that is rolled back, so the examples do not depend on each other.
"""

import copy

import pytest
from django.db import transaction
from django.db.backends.base.operations import BaseDatabaseOperations
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openim_sync.callbacks import registry
from openim_sync.models import (
    BlockedUser,
    CallbackEvent,
    EventStatus,
    Friend,
    GroupMember,
    ImGroup,
    ImUser,
    OnlineSession,
)
from tests.helpers import SDKAPPID, TOKEN, post_openim, post_tencent, sample, sample_commands

pytestmark = pytest.mark.django_db

INTEGER_RANGES = BaseDatabaseOperations.integer_field_ranges
MIRROR = (ImUser, ImGroup, GroupMember, Friend, BlockedUser, OnlineSession)
SAMPLES = [(p, c) for p in ("openim", "tencent") for c in sample_commands(p)]
APPLIED = [(p, c) for p, c in SAMPLES if not registry.lookup(p, c).ignored]
IGNORED = [(p, c) for p, c in SAMPLES if registry.lookup(p, c).ignored]
OPENIM_ENVELOPE = {"actionCode", "errCode", "errMsg", "errDlt", "nextCode"}
TENCENT_ENVELOPE = {"ActionStatus", "ErrorCode", "ErrorInfo"}
EDGE_INTEGERS = [0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1]
EDGE_STRINGS = [
    "",
    " ",
    "12",
    "-1",
    "1e3",
    "9" * 40,
    "null",
    "IOS",
    "Admin",
    "\u0000",
    "\ufeff\u202e\u0301",
    "😀" * 3,
    "x" * 65,
    "x" * 501,
    "x" * 5000,
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTEGERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(EDGE_STRINGS),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=6,
)


def nodes(value, path=()):
    """The path (keys and list indexes) of every value inside ``value``, containers included."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        yield (*path, key)
        yield from nodes(item, (*path, key))


def at(body, path):
    for step in path:
        body = body[step]
    return body


def nested(value, depth):
    for _ in range(depth):
        value = [value]
    return value


EDGES = [*EDGE_INTEGERS, *EDGE_STRINGS, None, True, 1.5, [], {}, [None]]
OPERATIONS = [
    *["edge"] * 3,
    "retype",
    "replace",
    "delete",
    "add",
    "null item",
    "wrap",
    "nest",
    "repeat",
]


def edges_like(value):
    """Edge cases of ``value``'s own type (the likeliest to get past a type check)."""
    if isinstance(value, bool):
        return [None, 0, 1, "true"]
    if isinstance(value, int):
        return EDGE_INTEGERS
    if isinstance(value, str):
        return [*EDGE_STRINGS, 12, 2**64]
    if isinstance(value, list):
        return [[], [None], [*value, None], [{}], [[]]]
    return [{}, None, []]


@st.composite
def mutants(draw, body):
    """``body`` with one or two of its values (at any depth) changed."""
    body = copy.deepcopy(body)
    for _ in range(draw(st.integers(1, 2))):
        paths = list(nodes(body))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = at(body, path[:-1]), path[-1]
        value, operation = parent[key], draw(st.sampled_from(OPERATIONS))
        if operation == "edge":
            parent[key] = copy.deepcopy(draw(st.sampled_from(edges_like(value))))
        elif operation == "retype":
            parent[key] = copy.deepcopy(draw(st.sampled_from(EDGES)))
        elif operation == "replace":
            parent[key] = draw(values)
        elif operation == "delete":
            del parent[key]
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(st.text(max_size=12))] = draw(values)
        elif operation == "add":
            parent.insert(key, draw(values))
        elif operation == "null item" and isinstance(parent, list):
            parent.insert(key, None)
        elif operation == "null item":
            parent[key] = [*value, None] if isinstance(value, list) else None
        elif operation == "wrap":
            parent[key] = draw(st.sampled_from([[value], {"value": value}]))
        elif operation == "nest":
            parent[key] = nested(value, draw(st.sampled_from([5, 31, 40])))
        else:
            times = draw(st.sampled_from([0, 2, 50]))
            parent[key] = value * times if isinstance(value, list) else [value] * times
    return body


def deliver(client, protocol, command, body):
    if protocol == "openim":
        return post_openim(client, f"/{command}", body)
    return post_tencent(client, body, command=command, token=TOKEN)


def mirror_rows():
    return [list(model.objects.order_by("pk").values()) for model in MIRROR]


def out_of_range(rows):
    """Integers in ``rows`` (from :func:`mirror_rows`) that a column of that type cannot hold on
    every supported database: SQLite stores them, PostgreSQL would refuse them."""
    found = []
    for model, model_rows in zip(MIRROR, rows, strict=True):
        for field in model._meta.concrete_fields:
            bounds = INTEGER_RANGES.get(field.get_internal_type())
            for row in model_rows if bounds else ():
                value = row[field.attname]
                if value is not None and not bounds[0] <= value <= bounds[1]:
                    found.append((model.__name__, field.name, value))
    return found


def strings(value):
    if isinstance(value, dict):
        return set().union(*map(strings, value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*map(strings, value)) if value else set()
    return {value} if isinstance(value, str) else set()


def ids_not_sent_as_strings(event):
    """Ids that ``event`` wrote into the mirror (keys of the rows it touched, and the columns
    its stamp is on) that are not a string of its payload: a number made into an id, say."""
    sent = strings(event.payload)
    found = []
    for model in MIRROR:
        names = [
            f.name
            for f in model._meta.concrete_fields
            if f.get_internal_type() == "CharField" and f.name.endswith("_id")
        ]
        for row in model.objects.filter(last_event_id=event.pk).values("versions", *names):
            versions = row.pop("versions")
            found += [
                (model.__name__, name, value)
                for name, value in row.items()
                if value
                and value not in sent
                and (name in model.natural_key_fields or versions.get(name, [0, 0])[1] == event.pk)
            ]
    return found


def check_envelope(protocol, response):
    assert response["Content-Type"] == "application/json", response.content
    reply = response.json()
    if protocol == "openim":
        assert set(reply) == OPENIM_ENVELOPE, reply
        codes = [reply["actionCode"], reply["errCode"], reply["nextCode"]]
        assert reply["nextCode"] == 0
    else:
        assert set(reply) == TENCENT_ENVELOPE, reply
        codes = [reply["ErrorCode"]]
    assert all(type(code) is int for code in codes), reply
    return reply


@pytest.fixture
def delivered(openim_settings, protocol, command):
    """The unmodified sample, delivered once: the mutants then meet the rows it wrote."""
    openim_settings(TENCENT_SDKAPPID=SDKAPPID, TENCENT_TOKENS=[TOKEN])
    client = Client()
    response = deliver(client, protocol, command, sample(protocol, command))
    assert response.status_code == 200, response.content
    return client


def check_mutant(client, protocol, command, body):
    with transaction.atomic():
        before, events = mirror_rows(), CallbackEvent.objects.count()

        response = deliver(client, protocol, command, body)

        assert response.status_code < 500, response.content
        check_envelope(protocol, response)
        assert CallbackEvent.objects.count() == events + 1
        event = CallbackEvent.objects.latest("pk")
        if response.status_code == 200:
            assert event.status in (EventStatus.PROCESSED, EventStatus.IGNORED), event.reason
            assert not out_of_range(mirror_rows())
            assert not ids_not_sent_as_strings(event)
        else:
            assert event.status == EventStatus.REJECTED, event.reason
            assert mirror_rows() == before
        transaction.set_rollback(True)


def property_settings(max_examples):
    return settings(
        max_examples=max_examples,
        derandomize=True,
        database=None,
        deadline=None,
        # ``delivered`` runs once per sample on purpose; each example rolls its writes back.
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.mark.parametrize(("protocol", "command"), APPLIED, ids=[c for _, c in APPLIED])
@property_settings(max_examples=40)
@given(data=st.data())
def test_any_mutant_of_an_applied_sample(delivered, protocol, command, data):
    body = data.draw(mutants(sample(protocol, command)), label="body")
    check_mutant(delivered, protocol, command, body)


@pytest.mark.parametrize(("protocol", "command"), IGNORED, ids=[c for _, c in IGNORED])
@property_settings(max_examples=5)  # only the JSON and the command are checked: fewer
@given(data=st.data())
def test_any_mutant_of_an_ignored_sample(delivered, protocol, command, data):
    body = data.draw(mutants(sample(protocol, command)), label="body")
    check_mutant(delivered, protocol, command, body)
