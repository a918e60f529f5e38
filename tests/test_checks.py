"""System checks on OPENIM_SYNC: stable ids for unsafe and malformed settings."""

import pytest
from django.core import checks

from openim_sync.checks import check_settings

SAFE = {"OPENIM_SECRETS": ["s3cret-segment"], "TENCENT_TOKENS": ["token"]}


def ids(settings_dict, settings, debug=False):
    settings.DEBUG = debug
    settings.OPENIM_SYNC = settings_dict
    return sorted(message.id for message in check_settings())


def test_safe_settings_pass(settings):
    assert ids({**SAFE, "TENCENT_SDKAPPID": 1400123456}, settings) == []


def test_registered_with_django_checks(settings):
    settings.DEBUG = False
    settings.OPENIM_SYNC = {"PROCESSING": "sometimes"}
    found = {m.id for m in checks.run_checks(tags=[checks.Tags.security])}
    assert {"openim_sync.E001", "openim_sync.W001"} <= found


def test_w001_production_without_any_protection(settings):
    assert ids({}, settings, debug=False) == ["openim_sync.W001"]
    assert ids({}, settings, debug=True) == []


@pytest.mark.parametrize(
    "protection",
    [
        {"OPENIM_SECRETS": ["abc"]},
        {"OPENIM_SECRETS": "abc"},  # a single string counts as a one-item list
        {"OPENIM_BASIC_AUTH_PASSWORDS": ["openim:pw"]},
        {"ALLOWED_IPS": ["10.0.0.0/8"]},
    ],
)
def test_w001_silenced_by_any_protection(settings, protection):
    assert ids(protection, settings) == []


def test_w002_tencent_enabled_without_tokens(settings):
    assert ids({"OPENIM_SECRETS": ["s"], "TENCENT_SDKAPPID": 1400123456}, settings) == [
        "openim_sync.W002"
    ]
    # Off (no SdkAppid): no warning.
    assert ids({"OPENIM_SECRETS": ["s"]}, settings) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"PROCESSING": "later"}, "openim_sync.E001"),
        ({"OPENIM_SECRET": ["typo"]}, "openim_sync.E002"),
        ({"ALLOWED_IP": ["10.0.0.0/8"]}, "openim_sync.E002"),
        ({"ALLOWED_IPS": 10}, "openim_sync.E003"),
        ({"TENCENT_TOKENS": {"a": 1}}, "openim_sync.E003"),
        ({"TENCENT_TOKENS": [1234]}, "openim_sync.E003"),
        ({"ALLOWED_IPS": ["10.0.0.0/33"]}, "openim_sync.E004"),
        ({"TRUSTED_PROXIES": ["proxy.internal"]}, "openim_sync.E004"),
        ({"ALLOWED_IPS": ["10.0.0.256"]}, "openim_sync.E004"),
        ({"TENCENT_SDKAPPID": "14001234ab"}, "openim_sync.E005"),
        ({"TENCENT_SDKAPPID": 1.5}, "openim_sync.E005"),
        ({"MAX_BODY_BYTES": 0}, "openim_sync.E006"),
        ({"MAX_JSON_DEPTH": -1}, "openim_sync.E006"),
        ({"TENCENT_SIGN_WINDOW_SECONDS": "60"}, "openim_sync.E006"),
        ({"EVENT_RETENTION_DAYS": None}, "openim_sync.E006"),
        ({"PRESENCE_TTL_SECONDS": True}, "openim_sync.E006"),
        ({"OPENIM_SECRETS": ["a/b"]}, "openim_sync.E007"),
        ({"OPENIM_SECRETS": [""]}, "openim_sync.E007"),
        ({"OPENIM_BASIC_AUTH_PASSWORDS": ["no-colon"]}, "openim_sync.E007"),
    ],
)
def test_malformed_settings_are_errors(settings, extra, expected):
    found = ids({**SAFE, **extra}, settings)
    assert found == [expected]


def test_openim_sync_not_a_dict(settings):
    assert ids(["OPENIM_SECRETS"], settings) == ["openim_sync.E002"]


def test_valid_variants_are_not_errors(settings):
    settings_dict = {
        **SAFE,
        "TENCENT_SDKAPPID": "1400123456",
        "ALLOWED_IPS": ["10.0.0.1", "192.168.0.0/16", "2001:db8::/32"],
        "TRUSTED_PROXIES": ("127.0.0.1",),
        "OPENIM_BASIC_AUTH_PASSWORDS": ["openim:p@ss:word"],
        "MAX_BODY_BYTES": 4096,
        "PROCESSING": "deferred",
    }
    assert ids(settings_dict, settings) == []


def test_messages_name_the_setting(settings):
    settings.OPENIM_SYNC = {**SAFE, "ALLOWED_IPS": ["not-an-ip"], "MAX_BODY_BYTES": -5}
    text = " ".join(m.msg for m in check_settings())
    assert "OPENIM_SYNC['ALLOWED_IPS']" in text and "'not-an-ip'" in text
    assert "OPENIM_SYNC['MAX_BODY_BYTES']" in text and "-5" in text
