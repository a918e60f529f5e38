"""The example project: SQLite by default, PostgreSQL when DATABASE_URL is set.

Not for production as it stands: it runs with DEBUG on unless DJANGO_DEBUG=0.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-project-only-not-for-production")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") != "0"
ALLOWED_HOSTS = os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver"
).split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_tasks_db",
    "openim_sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_url(url):
    """``postgres://user:password@host:port/name?option=value`` → a DATABASES entry."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql", "pgsql"):
        raise ValueError(f"DATABASE_URL: unsupported scheme {parts.scheme!r} (use postgres://)")
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or "postgres",
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": dict(parse_qsl(parts.query)),
    }


if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("SQLITE_PATH", BASE_DIR / "db.sqlite3"),
            # Writers queue for the lock instead of failing with "database is locked".
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}


def _env_list(name, default=()):
    """A comma-separated environment variable as a list; ``default`` when it is not set at all
    (set it empty for an empty list)."""
    if name not in os.environ:
        return list(default)
    return [item for item in os.environ[name].split(",") if item]


# The example project's Tencent Cloud Chat callback token: callback authentication is on, as it
# should be in production, so `check` has nothing to warn about (openim_sync.W002). The README's
# Tencent curl signs with it; OPENIM_SYNC_TENCENT_TOKENS="" turns authentication off.
DEVELOPMENT_TENCENT_TOKEN = "example-project-tencent-token"

OPENIM_SYNC = {
    "OPENIM_SECRETS": _env_list("OPENIM_SYNC_SECRETS"),
    "TENCENT_SDKAPPID": int(os.environ.get("OPENIM_SYNC_TENCENT_SDKAPPID", "1400123456")),
    "TENCENT_TOKENS": _env_list("OPENIM_SYNC_TENCENT_TOKENS", [DEVELOPMENT_TENCENT_TOKEN]),
    "PROCESSING": os.environ.get("OPENIM_SYNC_PROCESSING", "inline"),
}

# `python manage.py test` runs the same pytest suite as `make test` (project/test_runner.py).
TEST_RUNNER = "project.test_runner.PytestRunner"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"openim_sync": {"handlers": ["console"], "level": "INFO"}},
}
