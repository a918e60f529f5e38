"""openim-sync: keep a Django mirror of OpenIM Server / Tencent Cloud Chat state via callbacks."""

__version__ = "0.1.0"
