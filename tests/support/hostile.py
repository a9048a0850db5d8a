"""Hostile inputs shared by the hardening tests: redirect targets that try to leave the site."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

# (family, target): every one must end on a path of our own site, or on the default page.
OFF_SITE_TARGETS: list[tuple[str, str]] = [
    ("tab", "/\t/evil.example/phish"),
    ("tab-start", "\t//evil.example"),
    ("newline", "/\n/evil.example"),
    ("crlf", "/\r\n/evil.example"),
    ("crlf-header", "/x\r\nSet-Cookie: stolen=1"),
    ("crlf-location", "/x\r\nLocation: https://evil.example/"),
    ("encoded-crlf", "/%0d%0a/evil.example"),
    ("backslashes", "\\\\evil.example"),
    ("slash-backslash", "/\\evil.example"),
    ("backslash-slash", "\\/evil.example"),
    ("slash-backslash-slash", "/\\/evil.example"),
    ("encoded-slashes", "%2F%2Fevil.example"),
    ("encoded-second-slash", "/%2Fevil.example"),
    ("encoded-backslashes", "%5C%5Cevil.example"),
    ("encoded-backslash", "/%5Cevil.example"),
    ("encoded-tab", "/%09/evil.example"),
    ("double-encoded", "%252F%252Fevil.example"),
    ("double-encoded-second", "/%252Fevil.example"),
    ("deeply-encoded", "/%25252525252F/evil.example"),
    ("leading-space", " //evil.example"),
    ("trailing-space", "//evil.example "),
    ("leading-nul", "\x00//evil.example"),
    ("leading-controls", "\x0c\x1f//evil.example"),
    ("triple-slash", "///evil.example"),
    ("quadruple-slash", "////evil.example/"),
    ("slash-two-backslashes", "/\\\\evil.example"),
    ("javascript", "javascript:alert(document.cookie)"),
    ("javascript-mixed-case", "JaVaScRiPt:alert(1)"),
    ("javascript-tab", "java\tscript:alert(1)"),
    ("javascript-space", " javascript:alert(1)"),
    ("data-url", "data:text/html,<script>alert(1)</script>"),
    ("absolute-https", "https://evil.example/phish"),
    ("absolute-http", "http://evil.example"),
    ("absolute-upper", "HTTPS://EVIL.EXAMPLE/"),
    ("scheme-no-slashes", "https:evil.example"),
    ("scheme-one-slash", "https:/evil.example"),
    ("scheme-backslashes", "https:\\\\evil.example"),
    ("other-scheme", "ftp://evil.example/"),
    ("userinfo-ours", "https://localhost@evil.example/"),
    ("userinfo-relative", "//localhost@evil.example"),
    ("userinfo-backslash", "https://evil.example\\@localhost/"),
    ("fullwidth-slashes", "\uff0f\uff0fevil.example"),
    ("fullwidth-second-slash", "/\uff0fevil.example"),
    ("fullwidth-backslash", "/\uff3cevil.example"),
    ("encoded-fullwidth-slash", "/%EF%BC%8Fevil.example"),
    ("dot-segment", "/.//evil.example"),
    ("dot-dot-segment", "/..//evil.example"),
    ("encoded-dots", "/%2e%2e//evil.example"),
    ("broken-ipv6", "http://[::1"),
    ("very-long", "/" + "a" * 5000),
]

# (target, where it must lead): our own paths survive, re-encoded where needed.
LOCAL_TARGETS: list[tuple[str, str]] = [
    ("/devices?state=in_stock", "/devices?state=in_stock"),
    ("/loans/5", "/loans/5"),
    ("/devices?q=a%20b", "/devices?q=a%20b"),
    ("/devices/a b", "/devices/a%20b"),
    ("/devices?", "/devices"),
    ("http://localhost/devices?unit=paihde", "/devices?unit=paihde"),
    ("/@evil.example", "/@evil.example"),
    ("/division\u2215slash", "/division%E2%88%95slash"),
]


def assert_local(location: str, host: str = "localhost") -> None:
    """A Location header that every browser resolves to a path of `host`."""
    assert location.startswith("/"), location
    assert not location.startswith(("//", "/\\")), location
    assert location.isascii() and location.isprintable() and " " not in location, location
    assert "\\" not in location, location
    resolved = urlsplit(urljoin(f"http://{host}/login", location))
    assert (resolved.scheme, resolved.netloc) == ("http", host), location
