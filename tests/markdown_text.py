"""What a Markdown string shows, rendered by an independent CommonMark parser (markdown-it-py,
with GFM's autolinks and strikethrough on): the text a reader sees, and whether it made any
link, image or HTML. Streamlit renders st.markdown/st.error/captions with a CommonMark parser
too, so user text escaped for one is text in the other."""

from __future__ import annotations

import html
import re

from markdown_it import MarkdownIt

_MD = MarkdownIt("commonmark", {"linkify": False}).enable(["strikethrough"])


def render(md: str) -> str:
    return _MD.render(str(md))


def shown(md: str) -> str:
    """The visible text of `md` (tags dropped, entities decoded, whitespace collapsed)."""
    text = html.unescape(re.sub(r"<[^>]+>", "", render(md)))
    return " ".join(text.split())


def active(md: str) -> list[str]:
    """The links, images and raw HTML tags `md` renders to (none for inert text)."""
    return re.findall(r"<(?:a|img)\b[^>]*>", render(md))
