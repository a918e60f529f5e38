"""The test suite's settings (pyproject.toml's DJANGO_SETTINGS_MODULE): the example project's,
with Tencent callback authentication off unless OPENIM_SYNC_TENCENT_TOKENS is set, so tests post
unsigned Tencent callbacks unless they turn tokens on (``openim_settings(TENCENT_TOKENS=[...])``
and ``post_tencent(..., token=...)``)."""

from project.settings import *  # noqa: F403
from project.settings import OPENIM_SYNC, _env_list

OPENIM_SYNC = {**OPENIM_SYNC, "TENCENT_TOKENS": _env_list("OPENIM_SYNC_TENCENT_TOKENS")}
