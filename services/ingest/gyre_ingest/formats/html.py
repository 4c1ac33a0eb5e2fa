"""HTML: the page's main content as Markdown-like text, without menus, sidebars, footers or scripts.

lxml does the parsing: it is fast (libxml2), tolerant of broken markup, already a dependency of
python-docx, and its element tree keeps each element's tail text, so removing an element never
drops the words after it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import lxml.etree
import lxml.html

from gyre_ingest.cleaning import clean_text, decode_text
from gyre_ingest.formats.base import ExtractedDocument, ExtractionError

MEDIA_TYPE = "text/html"

# Elements that never hold readable content.
_NOT_CONTENT = frozenset(
    "script style noscript template svg math iframe object embed canvas video audio map button select "
    "input textarea link meta head".split()
)
# Page furniture: navigation, site header and footer, side content, forms.
_BOILERPLATE_TAGS = frozenset("nav footer form dialog menu".split())
# Page furniture outside an article, but part of it inside one (Sphinx renders footnotes as <aside>).
_FURNITURE_OUTSIDE_ARTICLE = frozenset(("header", "aside"))
_BOILERPLATE_ROLES = frozenset(
    "navigation banner contentinfo search complementary menu menubar toolbar dialog alertdialog".split()
)
# Words in class or id that mark furniture; matched against the parts of each class/id split at
# '-', '_' and camelCase ("site-footer", "mainMenu"), plus substrings for run-together names
# ("sphinxsidebar", "globaltoc").
_BOILERPLATE_WORDS = frozenset(
    """sidebar sidebars menu menus navbar nav navigation breadcrumb breadcrumbs footer footnav related
    toc cookie cookies consent banner masthead share sharing social advert advertisement ads promo
    newsletter subscribe pagination pager skip skiplink headerlink comments comment popup modal
    sphinxsidebar sphinxsidebarwrapper searchbox topbar toolbar""".split()
)
_BOILERPLATE_SUBSTRINGS = ("sidebar", "navbar", "breadcrumb", "cookie", "footer", "globaltoc", "localtoc")
_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_BLOCKS = frozenset(
    """p div section article main blockquote figure figcaption address details summary center dl dt dd
    table thead tbody tfoot caption fieldset header hgroup ul ol""".split()
)
# Children that count towards an element's own text when looking for the densest one.
_PARAGRAPHS = frozenset("p pre blockquote ul ol dl h1 h2 h3 h4 h5 h6".split())
# A table whose cells hold paragraphs or lists is page layout, not data: its cells are rendered as blocks.
_CELL_BLOCKS = ("p", "div", "ul", "ol", "table", "pre", "blockquote", "h1", "h2", "h3", "h4", "h5", "h6")
_BLOCK_IN_CELL = "./*/*[" + " or ".join(f"self::{tag}" for tag in _CELL_BLOCKS) + "]"
_CLASS_PARTS = re.compile(r"[\s\-_:]+|(?<=[a-z])(?=[A-Z])")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_WHITESPACE = re.compile(r"\s+")
# A lone <article> must hold at least this share of the page's text to be its main content ...
_MIN_MAIN_SHARE = 0.2
# ... and the densest element this share of its text that is not links; else the page is kept whole.
_MIN_DENSEST_SHARE = 0.5


def extract_html(data: bytes, charset: str | None) -> ExtractedDocument:
    if not charset:
        declared = _META_CHARSET.search(data[:4096])
        charset = declared.group(1).decode("ascii") if declared else None
    markup = _XML_DECLARATION.sub("", decode_text(data, charset), count=1)
    if not markup.strip():
        return ExtractedDocument(text="", content_type=MEDIA_TYPE)
    try:
        document: Any = lxml.html.document_fromstring(markup)
    except (lxml.etree.ParserError, ValueError) as exc:
        if "empty" in str(exc).lower():
            return ExtractedDocument(text="", content_type=MEDIA_TYPE)
        raise ExtractionError("undecodable", f"the HTML could not be parsed: {exc}") from exc
    title_element = document.find(".//title")
    title = _collapse(" ".join(title_element.itertext())) if title_element is not None else ""
    _drop_all(el for el in document.iter() if _is_not_content(el))
    body = document.find("body")
    root: Any = body if body is not None else document
    main = _declared_main(root)
    if main is not None:
        _drop_boilerplate(main)
    else:
        _drop_boilerplate(root)
        article = _single_article(root)
        main = article if article is not None else _densest(root)
    text = clean_text(_render(main))
    if not title:
        title = _first_heading(text)
    return ExtractedDocument(text=text, content_type=MEDIA_TYPE, title=title)


def _is_not_content(el: Any) -> bool:
    if not isinstance(el.tag, str):  # comments and processing instructions
        return True
    if el.tag in _NOT_CONTENT:
        return True
    style = _WHITESPACE.sub("", el.get("style", "")).lower()
    return el.get("hidden") is not None or el.get("aria-hidden") == "true" or "display:none" in style


def _drop_all(elements: Iterable[Any]) -> None:
    for el in list(elements):
        if el.getparent() is not None:
            el.drop_tree()  # keeps the element's tail text


def _declared_main(root: Any) -> Any | None:
    """The page's <main> or role=main element, when it has any text: the author said it is the content."""
    candidates = [el for el in root.xpath("//main|//*[@role='main']") if _text_length(el)]
    return max(candidates, key=_text_length) if candidates else None


def _single_article(root: Any) -> Any | None:
    # A list of articles (a blog's front page) has no single main one; a small one is a teaser.
    articles = root.xpath("//article[not(ancestor::article)]")
    if len(articles) == 1 and _text_length(articles[0]) >= _MIN_MAIN_SHARE * _text_length(root):
        return articles[0]
    return None


def _drop_boilerplate(root: Any) -> None:
    """Removes furniture inside ``root``: never ``root`` itself, nor an element holding the main content."""
    total = _text_length(root)
    doomed: set[Any] = set()
    for el in root.iterdescendants():
        kind = _boilerplate_kind(el)
        if kind is None or el.xpath(".//main|.//article|.//*[@role='main']"):
            continue
        # A wrapper named after its layout ("page-with-sidebar") may hold the page's title or most of
        # its text; keeping some furniture is better than losing the content.
        if kind == "named" and (el.xpath(".//h1") or _text_length(el) > 0.5 * total):
            continue
        doomed.add(el)
    _drop_all(el for el in doomed if not any(ancestor in doomed for ancestor in el.iterancestors()))


def _boilerplate_kind(el: Any) -> str | None:
    """Whether ``el`` is furniture: "semantic" by its tag or role, "named" by its class or id, else None."""
    tag = el.tag
    if tag in _BOILERPLATE_TAGS or el.get("role", "").lower() in _BOILERPLATE_ROLES:
        return "semantic"
    if tag in _FURNITURE_OUTSIDE_ARTICLE and not any(
        a.tag in ("article", "main") or a.get("role") == "main" for a in el.iterancestors()
    ):
        # The page's header is the site banner; an article's own header carries its title.
        return "semantic"
    if tag in ("body", "html", "main", "article"):
        return None
    if any(ancestor.tag in _HEADINGS for ancestor in el.iterancestors()):
        # A heading's own text is content (Sphinx wraps it in <a class="toc-backref">); only its
        # permalink mark ("¶", class headerlink) is furniture.
        return "named" if "headerlink" in el.get("class", "").lower().split() else None
    words = el.get("class", "")
    # Ids of content sections are made from their headings ("comments", "related-modules"): a
    # section, or an element with a heading of its own, is judged by its class alone.
    if tag != "section" and not any(child.tag in _HEADINGS for child in el):
        words += " " + el.get("id", "")
    for part in _CLASS_PARTS.split(words):
        part = part.lower()
        if part and (part in _BOILERPLATE_WORDS or any(s in part for s in _BOILERPLATE_SUBSTRINGS)):
            return "named"
    return None


def _densest(root: Any) -> Any:
    """The element whose own paragraphs hold the most text, widened to include its heading."""
    best, best_score = root, 0
    for el in root.iter():
        score = len(_collapse(el.text or "")) + sum(
            _unlinked_text_length(child) if child.tag in _PARAGRAPHS else len(_collapse(child.tail or ""))
            for child in el
        )
        if score > best_score:
            best, best_score = el, score
    total = _unlinked_text_length(root)
    if best is root or total <= 0 or _unlinked_text_length(best) < _MIN_DENSEST_SHARE * total:
        return root
    # The article's title often sits just outside the paragraphs' container: widen to take in
    # headings, but nothing else (a few characters of slack for whitespace between elements).
    while best is not root:
        parent = best.getparent()
        headings = sum(_text_length(h) for h in parent.iter(*_HEADINGS) if best not in h.iterancestors())
        if _text_length(parent) - _text_length(best) - headings > 10:
            break
        best = parent
    # A page made of sections of one kind (asciidoc's div.sect1: NAME, SYNOPSIS, DESCRIPTION, OPTIONS
    # of a manual page) where one section holds most of the text: the content is all the sections,
    # not the longest one alone.
    while best is not root and (best.get("class") or best.tag == "section"):
        parent = best.getparent()
        if not any(
            peer is not best and peer.tag == best.tag and peer.get("class") == best.get("class") and _text_length(peer)
            for peer in parent
        ):
            break
        best = parent
    # The page's title, with a little text of its own (a manual page's NAME line under its <h1>), may
    # sit in a header beside the content: take it in when it adds little besides.
    while best is not root and not best.xpath(".//h1"):
        parent = best.getparent()
        if not parent.xpath(".//h1") or _text_length(parent) - _text_length(best) > 0.1 * _text_length(best):
            break
        best = parent
    return best


def _unlinked_text_length(el: Any) -> int:
    # Text that is mostly links (menus, link lists) is navigation, however long.
    return _text_length(el) - sum(_text_length(link) for link in el.iter("a"))


def _text_length(el: Any) -> int:
    return len(_collapse(el.text_content()))


def _collapse(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _first_heading(text: str) -> str:
    for line in text.split("\n"):
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def _render(root: Any) -> str:
    writer = _Writer()
    writer.element(root)
    return writer.result()


class _Writer:
    """Walks the tree once, writing blocks separated by blank lines and list items as '- ' lines."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._pending_newlines = 0
        self._in_pre = 0
        self._in_item = 0

    def result(self) -> str:
        return "".join(self._parts)

    def _text(self, text: str | None) -> None:
        if not text:
            return
        if not self._in_pre:
            text = _WHITESPACE.sub(" ", text)
            if self._pending_newlines and not text.strip():
                return
        if self._pending_newlines:
            if self._parts:
                self._parts.append("\n" * self._pending_newlines)
            self._pending_newlines = 0
            if not self._in_pre:
                text = text.lstrip()
        self._parts.append(text)

    def _break(self, newlines: int) -> None:
        self._pending_newlines = max(self._pending_newlines, newlines)

    def element(self, el: Any) -> None:
        tag = el.tag if isinstance(el.tag, str) else ""
        if tag in _HEADINGS:
            self._break(2)
            self._text("#" * _HEADINGS[tag] + " " + _collapse(el.text_content()))
            self._break(2)
        elif tag == "pre":
            # Fenced, so that a code comment such as "# note" is not read as a heading.
            self._break(2)
            self._in_pre += 1
            self._text("```\n" + el.text_content().strip("\n") + "\n```")
            self._in_pre -= 1
            self._break(2)
        elif tag == "li":
            self._break(1)
            self._text("- ")
            self._in_item += 1
            self._children(el)
            self._in_item -= 1
            self._break(1)
        elif tag in ("ul", "ol"):
            # A nested list continues its parent item's lines; a top-level list is its own block.
            self._break(1 if self._in_item else 2)
            outer, self._in_item = self._in_item, 0
            self._children(el)
            self._in_item = outer
            self._break(1 if self._in_item else 2)
        elif tag == "tr" and not el.xpath(_BLOCK_IN_CELL):
            self._break(1)
            cells = [_collapse(cell.text_content()) for cell in el if cell.tag in ("td", "th")]
            self._text(" | ".join(cell for cell in cells if cell))
            self._break(1)
        elif tag == "br":
            self._break(1)
        elif tag in _BLOCKS and not self._in_item:
            self._break(2)
            self._children(el)
            self._break(2)
        else:
            if tag in _BLOCKS:  # a paragraph inside a list item stays on the item's line
                self._text(" ")
            self._children(el)

    def _children(self, el: Any) -> None:
        self._text(el.text)
        for child in el:
            self.element(child)
            self._text(child.tail)
