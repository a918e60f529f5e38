"""docs/callbacks.md names every command the registry knows."""

import re
from pathlib import Path

from openim_sync.callbacks import registry

DOC = Path(__file__).resolve().parent.parent / "docs" / "callbacks.md"


def test_every_registered_command_is_documented():
    documented = set(re.findall(r"`([A-Za-z0-9.]+)`", DOC.read_text()))
    missing = [spec.name for spec in registry.commands() if spec.name not in documented]
    assert missing == []
