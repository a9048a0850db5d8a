"""The forms and links of a console page, read with the standard library's HTML parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Control:
    tag: str  # input, textarea, select, button
    attrs: dict[str, str]

    @property
    def name(self) -> str:
        return self.attrs.get("name", "")

    @property
    def required(self) -> bool:
        return "required" in self.attrs


@dataclass
class Form:
    method: str
    action: str
    controls: list[Control] = field(default_factory=list)

    def control(self, name: str) -> Control | None:
        return next((c for c in self.controls if c.name == name), None)

    def hidden(self) -> dict[str, str]:
        """The hidden fields' values (what the form always sends)."""
        return {
            c.name: c.attrs.get("value", "")
            for c in self.controls
            if c.tag == "input" and c.attrs.get("type") == "hidden" and c.name
        }


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.links: list[str] = []
        self._open: Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._open = Form(values.get("method", "get").lower(), values.get("action", ""))
            self.forms.append(self._open)
        elif tag in ("input", "textarea", "select", "button") and self._open is not None:
            self._open.controls.append(Control(tag, values))
        elif tag == "a" and values.get("href"):
            self.links.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def read(html: str) -> tuple[list[Form], list[str]]:
    """The page's forms (with their controls) and the targets of its links."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.forms, reader.links
