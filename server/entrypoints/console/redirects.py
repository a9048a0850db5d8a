"""Where the console may send a browser next: only to a path of this site.

A `next` target comes from the user (a form field, a query parameter, a link someone else
sent them); an open redirect would make a phishing page look as if our console sent it.

A target is judged as browsers and proxies read it, not as written: browsers drop tabs and
newlines anywhere in a URL, trim control characters and spaces at its ends and read `\\` as
`/`; servers and proxies decode percent-escapes (sometimes twice) and fold Unicode
compatibility forms (a full-width `／` into `/`). In every such reading the target must be
a path of this site: no scheme and no host other than ours, no `//` at its start, no `.` or
`..` segments. The redirect is then built from the parsed path and query, percent-encoded
into plain ASCII that every reader takes for the same local path.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote, urlsplit

MAX_LENGTH = 2000
MAX_READINGS = 8  # a target that still decodes into new forms after this many is refused
_DROPPED = re.compile(r"[\t\n\r]")  # removed by browsers wherever they are in a URL
_ENDS = "".join(chr(c) for c in range(0x21))  # C0 controls and space, trimmed at the ends
# RFC 3986 path and query characters (with `%`: escapes already in the target stay as they are).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def local_path(target: str, host: str) -> str:
    """`target` as a path (and query) of this site, or "" if any reading of it leaves the site.

    `host` is ours (the request's Host): an absolute URL to it is accepted as its path.
    """
    if len(target) > MAX_LENGTH:
        return ""
    cleaned = _as_browsers_read(target)
    readings = _readings(cleaned)
    if readings is None or not all(_stays(reading, host) for reading in readings):
        return ""
    parts = urlsplit(cleaned)
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    query = quote(parts.query, safe=_QUERY_SAFE)
    return path + ("?" + query if query else "")


def _as_browsers_read(text: str) -> str:
    return _DROPPED.sub("", text).strip(_ENDS).replace("\\", "/")


def _readings(cleaned: str) -> set[str] | None:
    """The target as browsers, servers and proxies may read it; None if it decodes too deep."""
    readings, todo = {cleaned}, [cleaned]
    while todo:
        text = todo.pop()
        for reading in (unquote(text), unicodedata.normalize("NFKC", text)):
            reading = _as_browsers_read(reading)
            if reading not in readings:
                readings.add(reading)
                todo.append(reading)
        if len(readings) > MAX_READINGS:
            return None
    return readings


def _stays(reading: str, host: str) -> bool:
    """Whether a browser at this site that follows `reading` stays on a path of it."""
    try:
        parts = urlsplit(reading)
    except ValueError:  # "http://[" and the like: not a URL anybody should be sent to
        return False
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or parts.netloc.lower() != host.lower():
            return False
        reading = parts.path or "/"
    if not reading.startswith("/") or reading.startswith("//"):
        return False
    return not any(segment in (".", "..") for segment in parts.path.split("/"))
