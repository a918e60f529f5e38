"""Tencent Cloud Chat's UserSig ("TLSSigAPIv2"), computed here rather than from an unmaintained
package (see the reconcile docs).

The signature is an HMAC-SHA256 over four ``TLS.<name>:<value>`` lines, wrapped in a JSON
object, zlib-compressed and base64-encoded with Tencent's own alphabet (``+`` → ``*``,
``/`` → ``-``, ``=`` → ``_``).
"""

import base64
import hashlib
import hmac
import json
import time
import zlib

_TO_TENCENT = str.maketrans({"+": "*", "/": "-", "=": "_"})
_FROM_TENCENT = str.maketrans({"*": "+", "-": "/", "_": "="})


def signature(sdkappid, secret_key, identifier, issued_at, expire):
    """The inner ``TLS.sig``: base64 of the HMAC-SHA256 of the four lines."""
    content = (
        f"TLS.identifier:{identifier}\n"
        f"TLS.sdkappid:{sdkappid}\n"
        f"TLS.time:{issued_at}\n"
        f"TLS.expire:{expire}\n"
    )
    digest = hmac.new(secret_key.encode(), content.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def generate(sdkappid, secret_key, identifier, expire=86400, now=None):
    """A UserSig for ``identifier``, valid ``expire`` seconds from ``now`` (default: now)."""
    issued_at = int(time.time() if now is None else now)
    document = {
        "TLS.ver": "2.0",
        "TLS.identifier": str(identifier),
        "TLS.sdkappid": int(sdkappid),
        "TLS.expire": int(expire),
        "TLS.time": issued_at,
        "TLS.sig": signature(sdkappid, secret_key, identifier, issued_at, expire),
    }
    compressed = zlib.compress(json.dumps(document, separators=(",", ":")).encode())
    return base64.b64encode(compressed).decode().translate(_TO_TENCENT)


def decode(usersig):
    """The JSON document inside a UserSig (raises ``ValueError`` when it is not one)."""
    try:
        raw = base64.b64decode(usersig.translate(_FROM_TENCENT), validate=True)
        return json.loads(zlib.decompress(raw))
    except (ValueError, zlib.error) as exc:
        raise ValueError(f"not a UserSig: {exc}") from None


def verify(usersig, sdkappid, secret_key, now=None):
    """Whether ``usersig`` was signed with ``secret_key`` for ``sdkappid`` and is still valid."""
    try:
        document = decode(usersig)
        expected = signature(
            document["TLS.sdkappid"],
            secret_key,
            document["TLS.identifier"],
            document["TLS.time"],
            document["TLS.expire"],
        )
    except (ValueError, KeyError, TypeError):
        return False
    now = time.time() if now is None else now
    return (
        int(document["TLS.sdkappid"]) == int(sdkappid)
        and hmac.compare_digest(expected, document["TLS.sig"])
        and now < document["TLS.time"] + document["TLS.expire"]
    )
