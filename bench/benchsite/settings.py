"""The example project plus the benchmark's floor view (bench only; see bench/README.md)."""

from project.settings import *  # noqa: F403

ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"
