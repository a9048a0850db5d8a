"""Reading the console's SVG charts back: shapes, their boxes and what the tests look for."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
CHAR_W = {"chart-title": 9.0, "no-data": 9.0}  # px per character by text class; else 7


def parse(svg: str) -> ET.Element:
    return ET.fromstring(str(svg))


def view_box(root: ET.Element) -> tuple[float, float]:
    x, y, w, h = (float(v) for v in root.attrib["viewBox"].split())
    assert (x, y) == (0, 0)
    return w, h


def drawn(root: ET.Element) -> list[ET.Element]:
    """Every element outside <defs> (the hatch pattern's tile is not drawn where it stands)."""
    defs = {id(e) for d in root.iter(f"{NS}defs") for e in d.iter()}
    return [e for e in root.iter() if id(e) not in defs]


def tag(e: ET.Element) -> str:
    return e.tag.removeprefix(NS)


def classes(e: ET.Element) -> set[str]:
    return set(e.attrib.get("class", "").split())


def text_box(e: ET.Element) -> tuple[float, float, float, float]:
    """An estimate of a <text>'s box (left, top, right, bottom) from its anchor and length."""
    content = "".join(e.itertext())
    size = next((CHAR_W[c] for c in classes(e) if c in CHAR_W), 7.0)
    width = len(content) * size
    x, y = float(e.attrib["x"]), float(e.attrib["y"])
    anchor = e.attrib.get("text-anchor", "start")
    left = {"start": x, "middle": x - width / 2, "end": x - width}[anchor]
    return left, y - 13, left + width, y + 4


def boxes(root: ET.Element) -> list[tuple[str, tuple[float, float, float, float]]]:
    """The box of every drawn shape and text."""
    found = []
    for e in drawn(root):
        a = {k: float(v) for k, v in e.attrib.items() if re.fullmatch(r"-?[\d.]+", v)}
        kind = tag(e)
        if kind == "rect":
            found.append((kind, (a["x"], a["y"], a["x"] + a["width"], a["y"] + a["height"])))
        elif kind == "circle":
            r = a["r"]
            found.append((kind, (a["cx"] - r, a["cy"] - r, a["cx"] + r, a["cy"] + r)))
        elif kind == "line":
            found.append((kind, (a["x1"], a["y1"], a["x2"], a["y2"])))
        elif kind == "polyline":
            pts = [tuple(map(float, p.split(","))) for p in e.attrib["points"].split()]
            xs, ys = [p[0] for p in pts], [p[1] for p in pts]
            found.append((kind, (min(xs), min(ys), max(xs), max(ys))))
        elif kind == "text":
            found.append((kind, text_box(e)))
    return found


def assert_inside(svg: str) -> ET.Element:
    root = parse(svg)
    width, height = view_box(root)
    for kind, (x0, y0, x1, y1) in boxes(root):
        assert -0.05 <= min(x0, x1) and max(x0, x1) <= width + 0.05, (kind, x0, x1, width)
        assert -0.05 <= min(y0, y1) and max(y0, y1) <= height + 0.05, (kind, y0, y1, height)
        if kind == "rect":
            assert x1 >= x0 and y1 >= y0, "negative size"
    return root


def plot_edges(root: ET.Element) -> tuple[float, float, float]:
    """(left, right, bottom) of the plot, from its x axis line."""
    axis = next(e for e in drawn(root) if "axis" in classes(e))
    return float(axis.attrib["x1"]), float(axis.attrib["x2"]), float(axis.attrib["y1"])


def x_ticks(root: ET.Element) -> list[float]:
    return [
        float(e.attrib["x1"])
        for g in root.iter(f"{NS}g")
        if "x-axis" in classes(g)
        for e in g
        if tag(e) == "line"
    ]


def y_labels(root: ET.Element) -> list[str]:
    return [
        "".join(e.itertext())
        for g in root.iter(f"{NS}g")
        if "y-axis" in classes(g)
        for e in g
        if tag(e) == "text"
    ]


def number(label: str, decimal: str = ".") -> float:
    """A tick label's value (English: "1,250" is 1250; pass decimal="," for Finnish)."""
    digits = re.sub(rf"[^\d{re.escape(decimal)}-]", "", label)
    return float(digits.replace(decimal, "."))


def points(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{NS}g") if "point" in classes(g)]


def visible_markers(root: ET.Element) -> list[ET.Element]:
    return [
        e for e in root.iter(f"{NS}circle") if "marker" in classes(e) and "hidden" not in classes(e)
    ]


def withheld_marks(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{NS}rect") if classes(e) == {"withheld"}]


def visible_title(root: ET.Element) -> str:
    return "".join(
        next(e for e in root.iter(f"{NS}text") if "chart-title" in classes(e)).itertext()
    )


def no_data(root: ET.Element) -> bool:
    return any("no-data" in classes(e) for e in root.iter(f"{NS}text"))


def assert_accessible(root: ET.Element) -> None:
    """Named by its title; every mark focusable, named, with a hover <title>."""
    assert root.attrib["role"] == "group"
    assert root.find(f"{NS}title") is not None and root.find(f"{NS}desc") is not None
    for g in points(root):
        assert g.attrib["tabindex"] == "0" and g.attrib["role"] == "img"
        assert g.attrib["aria-label"]
        hover = g.find(f"{NS}title")
        assert hover is not None and hover.text == g.attrib["aria-label"]


def charts_in(page: str) -> list[ET.Element]:
    """The charts of an HTML page, parsed."""
    return [parse(svg) for svg in re.findall(r'<svg class="chart".*?</svg>', page, re.S)]


# Measured by the browser: every drawn element's box (getBBox, the real text widths) must lie
# inside its chart's viewBox. Returns "chart title: element …" for each one that does not.
OVERFLOW_JS = """() => {
  const out = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const vb = svg.viewBox.baseVal;
    const name = svg.querySelector('title').textContent;
    for (const el of svg.querySelectorAll('rect, circle, line, polyline, text')) {
      if (el.closest('defs')) continue;
      const b = el.getBBox();
      if (b.x < vb.x - 0.5 || b.y < vb.y - 0.5 || b.x + b.width > vb.x + vb.width + 0.5
          || b.y + b.height > vb.y + vb.height + 0.5) {
        const at = [b.x, b.y, b.width, b.height].map((v) => v.toFixed(1)).join(' ');
        out.push(`${name}: ${el.tagName}.${el.getAttribute('class')} "${el.textContent}" ${at}`);
      }
    }
  }
  return out;
}"""
