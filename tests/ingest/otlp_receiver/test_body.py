"""Content coding and size limits of HTTP bodies."""

from __future__ import annotations

import gzip
import os
import zlib

import pytest

from emberlake.errors import InvalidRequest, RequestTooLarge, UnsupportedMediaType
from ingest.otlp_receiver.body import decode_content, gunzip


def test_identity_passes_through() -> None:
    assert decode_content(b"abc", None, 10) == b"abc"
    assert decode_content(b"abc", "identity", 10) == b"abc"


def test_identity_over_limit_is_too_large() -> None:
    with pytest.raises(RequestTooLarge, match="over the limit of 10 bytes"):
        decode_content(b"x" * 11, None, 10)


def test_gzip_roundtrip_larger_than_one_step() -> None:
    data = os.urandom(700_000)
    assert decode_content(gzip.compress(data), "gzip", 1_000_000) == data
    assert decode_content(gzip.compress(data), "GZIP ", 1_000_000) == data


def test_concatenated_gzip_members_are_one_body() -> None:
    assert gunzip(gzip.compress(b"abc") + gzip.compress(b"def"), 100) == b"abcdef"


def test_gzip_bomb_stops_at_limit() -> None:
    bomb = gzip.compress(b"\0" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(RequestTooLarge, match="inflates to more than"):
        decode_content(bomb, "gzip", 1_000_000)


def test_gzip_exactly_at_limit_is_accepted() -> None:
    assert len(gunzip(gzip.compress(b"a" * 1000), 1000)) == 1000


def test_truncated_gzip_is_invalid() -> None:
    body = gzip.compress(os.urandom(5000))
    with pytest.raises(InvalidRequest, match="truncated"):
        decode_content(body[: len(body) // 2], "gzip", 100_000)


def test_not_gzip_is_invalid() -> None:
    with pytest.raises(InvalidRequest, match="not valid gzip"):
        decode_content(b"plain text, not gzip", "gzip", 100_000)


def test_unknown_encoding_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaType, match="br"):
        decode_content(b"x", "br", 100)


@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS])
def test_deflate_zlib_or_raw(wbits: int) -> None:
    data = os.urandom(1000) * 50
    packer = zlib.compressobj(wbits=wbits)
    body = packer.compress(data) + packer.flush()
    assert decode_content(body, "deflate", 100_000) == data
    with pytest.raises(RequestTooLarge):
        decode_content(body, "deflate", 10_000)
