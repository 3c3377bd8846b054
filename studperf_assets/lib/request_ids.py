"""Request IDs as fixed-size numbers, for the prediction index (``monitoring_schema``)."""

from __future__ import annotations

import hashlib


def id_hash(request_id: str) -> int:
    """The first 8 bytes of the request ID's BLAKE2b, as a signed 64-bit integer (a SQL
    BIGINT). Among a billion IDs two share a hash with a probability of about 3 %; the
    index uses it only to find candidate windows, never to join a label."""
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)
