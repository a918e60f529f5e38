import pytest
from django.db import connection


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture
def openim_settings(settings):
    """Change OPENIM_SYNC keys for one test: ``openim_settings(OPENIM_SECRETS=["s"])``."""

    def apply(**values):
        settings.OPENIM_SYNC = {**settings.OPENIM_SYNC, **values}

    return apply
