"""The report's HTML: one self-contained page (inline CSS, pictures as base64 PNG data URIs, no script, no
network), built from escaped text only."""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#c9cfdb;font-size:14px}nav{padding:8px 32px;background:#e8ebf0;font-size:14px}
nav a{margin-right:14px;color:#1f5fa8;text-decoration:none}main{padding:8px 32px 40px;max-width:1200px}
section{background:#fff;border-radius:6px;padding:14px 20px;margin:16px 0;box-shadow:0 1px 2px #0002}
h2{font-size:18px;margin:4px 0 10px}h3{font-size:15px;margin:14px 0 6px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #d6dae1;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f3f4f6;padding:10px;overflow:auto;font-size:12px;max-height:420px}
img.plot{max-width:100%;height:auto}p.na{color:#7a8194;font-style:italic}p.alarm{color:#a32020}
.items{display:flex;gap:8px;flex-wrap:wrap;align-items:flex-start}
figure{margin:0;width:170px;font-size:12px}figure img{display:block;max-width:160px;image-rendering:pixelated}
figcaption{word-wrap:break-word;overflow-wrap:anywhere}figure.query{border-right:3px solid #1f5fa8;padding-right:8px}
.match{color:#1b7a32}.miss{color:#a32020}
"""


@dataclass
class Section:
    """One part of the page: its anchor, title and body (HTML made here from escaped text)."""

    anchor: str
    title: str
    body: str


def esc(text: Any) -> str:
    """Text made safe inside HTML elements and attributes."""
    return html.escape(str(text), quote=True)


def figure_png(fig: Any) -> bytes:
    """A matplotlib Figure (with a canvas) as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def picture_png(picture: Any) -> bytes:
    """uint8 [H, W, 3] (or [H, W]) as PNG bytes."""
    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(picture, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def img(png: bytes, alt: str, css_class: str = "plot") -> str:
    """An <img> holding ``png`` inline (a data URI: the page opens from disk with no other file)."""
    return (f'<img class="{css_class}" alt="{esc(alt)}" '
            f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">')


def table(header: Sequence[Any], rows: Sequence[Sequence[Any]], numeric_from: int | None = None) -> str:
    """An HTML table of escaped cells; columns from ``numeric_from`` on are right-aligned."""
    def cell(i: int, value: Any) -> str:
        numeric = numeric_from is not None and i >= numeric_from
        return f'<td class="num">{esc(value)}</td>' if numeric else f"<td>{esc(value)}</td>"

    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def unavailable(message: str) -> str:
    """The one line a section shows when its inputs are missing: what to run to get it."""
    return f'<p class="na">not available: {esc(message)}</p>'


def render_page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole page: a header, a table of contents and the sections."""
    nav = "".join(f'<a href="#{esc(s.anchor)}">{esc(s.title)}</a>' for s in sections)
    parts = "".join(f'<section id="{esc(s.anchor)}"><h2>{esc(s.title)}</h2>{s.body}</section>' for s in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,">'  # no favicon request from disk
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header><nav>{nav}</nav>"
            f"<main>{parts}</main></body></html>\n")
