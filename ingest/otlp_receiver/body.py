"""HTTP request bodies: content coding and size limits, before any OTLP decoding.

A gzip body is inflated in bounded steps, so a small compressed request cannot expand into
gigabytes (a gzip bomb): decompression stops as soon as the output passes the limit.
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


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate gzip data (one or more members) to at most ``limit`` bytes."""
    out: list[bytes] = []
    size = 0
    rest = data
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        pending = rest
        try:
            while pending and not inflater.eof:
                chunk = inflater.decompress(pending, _STEP)
                pending = inflater.unconsumed_tail
                size += len(chunk)
                if size > limit:
                    raise RequestTooLarge(
                        f"gzip body inflates to more than the limit of {limit} bytes:"
                        " send smaller batches"
                    )
                out.append(chunk)
        except zlib.error as exc:
            raise InvalidRequest(f"body is not valid gzip: {exc}") from None
        if not inflater.eof:
            raise InvalidRequest("gzip body is truncated")
        rest = inflater.unused_data
        # Concatenated gzip members are one stream by RFC 1952; trailing zero padding is not.
        if not rest.strip(b"\x00"):
            return b"".join(out)


def decode_content(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo the HTTP content coding (identity or gzip) and enforce the size limit on the result."""
    check_size(len(data), limit)
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return data
    if coding in ("gzip", "x-gzip"):
        return gunzip(data, limit)
    raise UnsupportedMediaType(
        f"content encoding {content_encoding!r} is not supported: use gzip or none"
    )
