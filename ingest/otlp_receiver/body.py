"""HTTP request bodies: content coding and size limits, before any OTLP decoding.

A gzip or deflate body is inflated in bounded steps, so a small compressed request cannot expand
into gigabytes (a gzip bomb): decompression stops as soon as the output passes the limit.
"""

from __future__ import annotations

import zlib

from emberlake.errors import InvalidRequest, RequestTooLarge, UnsupportedMediaType

#: Inflate at most this much per step, so memory stays bounded whatever the ratio.
_STEP = 256 * 1024


def check_size(size: int, limit: int, what: str = "request body") -> None:
    """Raise :class:`RequestTooLarge` if ``size`` exceeds ``limit`` bytes."""
    if size > limit:
        raise RequestTooLarge(
            f"{what} is {size} bytes, over the limit of {limit} bytes: send smaller batches"
        )


def _inflate(data: bytes, wbits: int, limit: int, coding: str) -> bytes:
    out: list[bytes] = []
    size = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=wbits)
        pending = rest
        try:
            while pending and not inflater.eof:
                chunk = inflater.decompress(pending, _STEP)
                pending = inflater.unconsumed_tail
                size += len(chunk)
                if size > limit:
                    raise RequestTooLarge(
                        f"{coding} body inflates to more than the limit of {limit} bytes:"
                        " send smaller batches"
                    )
                out.append(chunk)
        except zlib.error as exc:
            raise InvalidRequest(f"body is not valid {coding}: {exc}") from None
        if not inflater.eof:
            raise InvalidRequest(f"{coding} body is truncated")
        rest = inflater.unused_data
        # Concatenated gzip members are one stream by RFC 1952; trailing zero padding is not.
        if not rest.strip(b"\x00"):
            return b"".join(out)


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate gzip data (one or more members) to at most ``limit`` bytes."""
    return _inflate(data, 16 + zlib.MAX_WBITS, limit, "gzip")


def inflate(data: bytes, limit: int) -> bytes:
    """Inflate HTTP ``deflate`` data to at most ``limit`` bytes.

    HTTP means the zlib format (RFC 1950), but some clients send raw deflate (RFC 1951): a zlib
    header is recognised by its check bits, else the data is read as raw deflate.
    """
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return _inflate(data, zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS, limit, "deflate")


def decode_content(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo the HTTP content coding (identity, gzip or deflate); the limit holds for the result."""
    check_size(len(data), limit)
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return data
    if coding in ("gzip", "x-gzip"):
        return gunzip(data, limit)
    if coding == "deflate":
        return inflate(data, limit)
    raise UnsupportedMediaType(
        f"content encoding {content_encoding!r} is not supported: use gzip, deflate or none"
    )
