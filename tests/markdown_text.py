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


#: GFM's autolink literals, which Streamlit's renderer links in text after parsing (escapes
#: do not stop them): "http(s)://" or "www." before a domain character, and e-mail addresses.
AUTOLINK = re.compile(r"(?i)(?:https?://|www\.)[\w-]|[\w.+-]@[\w-]+\.[\w-]")


def shown(md: str) -> str:
    """The visible text of `md` (tags dropped, entities decoded, invisible word joiners
    dropped, whitespace collapsed)."""
    text = html.unescape(re.sub(r"<[^>]+>", "", render(md))).replace("\u2060", "")
    return " ".join(text.split())


def active(md: str) -> list[str]:
    """The links, images and raw HTML tags `md` renders to, and the bare addresses GFM would
    link in its text (none for inert text)."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", render(md)))
    return re.findall(r"<(?:a|img)\b[^>]*>", render(md)) + AUTOLINK.findall(text)
