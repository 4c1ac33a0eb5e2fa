"""Extracting clean text from every supported format, and naming the reason when it cannot be done."""

from __future__ import annotations

import codecs
import io
import json
import zipfile

import docx
import pytest
from fpdf import FPDF
from fpdf.enums import EncryptionMethod

from gyre_ingest.formats import ExtractedDocument, ExtractionError, ExtractOptions, Page, detect_media_type, extract

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


def extraction_error(data: bytes, content_type: str, options: ExtractOptions | None = None) -> ExtractionError:
    with pytest.raises(ExtractionError) as caught:
        extract(data, content_type, options=options or ExtractOptions())
    return caught.value


# --- plain text and Markdown -------------------------------------------------------------------


def test_plain_text_is_decoded_with_its_declared_charset_and_cleaned() -> None:
    doc = extract("Grüße  aus\r\n\r\n\r\nMünchen\x00".encode("latin-1"), "text/plain; charset=ISO-8859-1")
    assert doc == ExtractedDocument(text="Grüße aus\n\nMünchen", content_type="text/plain")


def test_plain_text_without_a_charset_in_cp1252_or_utf16_decodes_right() -> None:
    text = "“Quoted” naïve café – déjà vu, and a long enough sentence."
    assert extract(text.encode("cp1252"), "text/plain").text == text
    assert extract(text.encode("utf-16"), "text/plain").text == text


def test_binary_data_declared_as_text_is_undecodable() -> None:
    assert extraction_error(bytes(range(256)) * 8, "text/plain").code == "undecodable"


def test_markdown_keeps_its_headings_and_takes_the_first_as_title() -> None:
    doc = extract(b"Intro line\n\n# Guide\n\nSome text.\n\n## Part two\n\nMore.", "text/markdown")
    assert doc.text == "Intro line\n\n# Guide\n\nSome text.\n\n## Part two\n\nMore."
    assert (doc.title, doc.content_type) == ("Guide", "text/markdown")


def test_markdown_underlined_headings_become_hash_headings() -> None:
    doc = extract(
        b"Guide\n=====\n\nText.\n\nPart two\n--------\n\nMore text.\n\n---\n\nAfter a rule.", "text/x-markdown"
    )
    assert doc.text == "# Guide\n\nText.\n\n## Part two\n\nMore text.\n\n---\n\nAfter a rule."


def test_markdown_front_matter_is_dropped_and_gives_the_title() -> None:
    doc = extract(b'---\ntitle: "Release notes"\nauthor: ops\n---\n# Version 2\n\nFixed things.', "text/markdown")
    assert doc.text == "# Version 2\n\nFixed things."
    assert doc.title == "Release notes"


# --- HTML ----------------------------------------------------------------------------------------

NEWS_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Rivers of Europe | Geo Weekly</title>
<style>body { color: red }</style><script>var tracking = "SCRIPT-TEXT";</script></head>
<body class="layout-with-sidebar">
  <header class="site-header"><a href="/">Geo Weekly</a> SITE-BANNER</header>
  <nav class="main-menu"><ul><li><a href="/">Home MENU-ITEM</a></li><li><a href="/about">About us</a></li></ul></nav>
  <div id="cookie-banner">We use cookies COOKIE-TEXT. <button>Accept</button></div>
  <div class="breadcrumbs"><a href="/">Home</a> &gt; Geography BREADCRUMB-TEXT</div>
  <div class="container">
    <div class="content">
      <h1>Rivers of Europe</h1>
      <p class="lead">The <a href="/danube">Danube</a> flows through <b>ten</b> countries,
         more than any other river in the world.</p>
      <h2>The Rhine</h2>
      <p>The Rhine rises in the Swiss Alps and reaches the North Sea in the Netherlands.</p>
      <ul><li>Length: 1,230 km</li><li>Source: Lake Toma</li></ul>
      <pre>rivers = ["Danube", "Rhine"]
# a comment in code
print(len(rivers))</pre>
      <div class="share-buttons">Share on SHARE-TEXT</div>
      <table><tr><th>River</th><th>Length</th></tr><tr><td>Volga</td><td>3,530 km</td></tr></table>
    </div>
    <div class="sidebar"><h3>Most read</h3><ul><li>SIDEBAR-TEXT about mountains</li></ul></div>
  </div>
  <footer class="site-footer"><p>© 2024 Geo Weekly FOOTER-TEXT. All rights reserved.</p></footer>
</body></html>
"""


def test_html_main_content_is_kept_and_menus_sidebars_and_footers_are_dropped() -> None:
    doc = extract(NEWS_PAGE.encode(), "text/html; charset=utf-8")
    for furniture in (
        "SCRIPT-TEXT",
        "SITE-BANNER",
        "MENU-ITEM",
        "COOKIE-TEXT",
        "BREADCRUMB-TEXT",
        "SHARE-TEXT",
        "SIDEBAR-TEXT",
        "FOOTER-TEXT",
        "color: red",
    ):
        assert furniture not in doc.text
    assert "The Danube flows through ten countries, more than any other river in the world." in doc.text
    assert "The Rhine rises in the Swiss Alps" in doc.text
    assert doc.title == "Rivers of Europe | Geo Weekly"


def test_html_headings_lists_tables_and_code_are_rendered_as_markdown_like_text() -> None:
    doc = extract(NEWS_PAGE.encode(), "text/html")
    assert doc.text.split("\n\n") == [
        "# Rivers of Europe",
        "The Danube flows through ten countries, more than any other river in the world.",
        "## The Rhine",
        "The Rhine rises in the Swiss Alps and reaches the North Sea in the Netherlands.",
        "- Length: 1,230 km\n- Source: Lake Toma",
        '```\nrivers = ["Danube", "Rhine"]\n# a comment in code\nprint(len(rivers))\n```',
        "River | Length\nVolga | 3,530 km",
    ]


# A trimmed copy of the page shape Sphinx (the Python documentation) produces.
SPHINX_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8" />
<title>3. An Informal Introduction to Python &#8212; Python 3.11 documentation</title>
<script src="_static/doctools.js"></script></head>
<body>
<div class="related" role="navigation" aria-label="related navigation">
  <h3>Navigation</h3>
  <ul><li class="right"><a href="genindex.html">index</a></li><li><a href="next.html">next</a> |</li></ul>
</div>
<div class="document">
  <div class="documentwrapper"><div class="bodywrapper">
    <div class="body" role="main">
      <section id="an-informal-introduction-to-python">
        <span id="tut-informal"></span>
        <h1>3. An Informal Introduction to Python<a class="headerlink" href="#an" title="Permalink">¶</a></h1>
        <p>In the following examples, input and output are distinguished by the presence or absence of
        prompts (<span class="pre">&gt;&gt;&gt;</span> and <span class="pre">…</span>).</p>
        <section id="comments">
          <span id="index-1"></span>
          <h2>3.1. Comments<a class="headerlink" href="#comments">¶</a></h2>
          <p>Comments in Python start with the hash character.</p>
          <div class="highlight-python3 notranslate">
          <div class="highlight"><pre><span></span><span class="c1"># this is the first comment</span>
<span class="n">spam</span> <span class="o">=</span> <span class="mi">1</span>
</pre></div></div>
        </section>
        <p class="rubric">Footnotes</p>
        <aside class="footnote brackets" id="id3" role="note">
          <span class="label">[1]</span><p>Since ** has higher precedence than -, -3**2 is -(3**2).</p>
        </aside>
      </section>
      <div class="clearer"></div>
    </div>
  </div></div>
  <div class="sphinxsidebar" role="navigation" aria-label="main navigation">
    <div class="sphinxsidebarwrapper">
      <h3><a href="contents.html">Table of Contents</a></h3>
      <ul><li><a class="reference internal" href="#">3. An Informal Introduction SIDEBAR-TOC</a></li></ul>
      <h4>Previous topic</h4><p class="topless"><a href="interpreter.html">2. Using the Interpreter</a></p>
      <div role="note" aria-label="source link"><h3>This Page</h3>
        <ul class="this-page-menu"><li><a href="bugs.html">Report a Bug</a></li></ul></div>
      <div id="searchbox" role="search"><form class="search"><input type="text" name="q" /></form></div>
    </div>
  </div>
  <div class="clearer"></div>
</div>
<div class="footer">&copy; Copyright 2001-2024, Python Software Foundation. Created using Sphinx.</div>
</body></html>
"""


def test_a_sphinx_page_keeps_its_body_sections_code_and_footnotes_without_navigation() -> None:
    doc = extract(SPHINX_PAGE.encode(), "text/html")
    assert doc.text == (
        "# 3. An Informal Introduction to Python\n\n"
        "In the following examples, input and output are distinguished by the presence or absence of "
        "prompts (>>> and …).\n\n"
        "## 3.1. Comments\n\n"
        "Comments in Python start with the hash character.\n\n"
        "```\n# this is the first comment\nspam = 1\n```\n\n"
        "Footnotes\n\n[1]\n\nSince ** has higher precedence than -, -3**2 is -(3**2)."
    )
    assert doc.title == "3. An Informal Introduction to Python — Python 3.11 documentation"


def test_html_without_semantic_markup_falls_back_to_the_element_with_most_text() -> None:
    page = (
        "<html><body><div id='top'><a href='/'>Home</a> <a href='/x'>Products LINKS</a></div>"
        "<table><tr><td class='left'><a href='/a'>Left column LINKS</a></td><td>"
        "<h2>Quarterly update</h2><div>"
        "<p>Our first paragraph explains the quarter in some detail so that it has real weight.</p>"
        "<p>The second paragraph continues with more results and a plan for the next quarter.</p></div>"
        "</td></tr></table><div>Copyright 2024 SMALLPRINT</div></body></html>"
    )
    doc = extract(page.encode(), "text/html")
    assert "Our first paragraph" in doc.text and "The second paragraph" in doc.text
    assert doc.text.startswith("## Quarterly update\n\n")  # the heading just outside the paragraphs' container
    assert "LINKS" not in doc.text and "SMALLPRINT" not in doc.text


def test_a_long_list_of_links_does_not_outweigh_a_shorter_article() -> None:
    links = "".join(f"<li><a href='/p{i}'>Another product page number {i}</a></li>" for i in range(20))
    page = (
        f"<html><body><div><ul>{links}</ul></div><div><h1>Opening hours</h1><p>The shop opens at nine and "
        "closes at six, every day but Sunday, and on public holidays it closes at noon.</p></div></body></html>"
    )
    doc = extract(page.encode(), "text/html")
    assert doc.text.startswith("# Opening hours\n\nThe shop opens at nine") and "product page" not in doc.text


def test_text_spread_over_many_small_blocks_is_kept_whole() -> None:
    answers = [f"Answer {word}: this is what you need to know." for word in ("one", "two", "three", "four", "five")]
    page = "<html><body>" + "".join(f"<div><p>{answer}</p></div>" for answer in answers) + "</body></html>"
    assert extract(page.encode(), "text/html").text == "\n\n".join(answers)


ARTICLE_PAGE = (
    "<html><body><header>SITE</header><article><header><h1>Launch day</h1><p>By Ada</p></header>"
    "<p>We launched the product today after a year of careful work.</p>"
    "<aside class='related-posts'>RELATED</aside></article></body></html>"
)


@pytest.mark.parametrize(
    ("page", "text"),
    [
        pytest.param(
            "<html><body><main><table><tr><td><p>First paragraph.</p><p>Second paragraph.</p></td></tr></table></main>",
            "First paragraph.\n\nSecond paragraph.",
            id="a_layout_table_is_rendered_as_paragraphs_not_as_a_data_row",
        ),
        pytest.param(
            "<html><body><div class='page-with-sidebar'><h1>Handbook</h1>"
            "<p>The handbook explains how the team works, in enough words to count as content.</p></div>"
            "<div class='sidebar'>SIDEBAR</div></body></html>",
            "# Handbook\n\nThe handbook explains how the team works, in enough words to count as content.",
            id="a_layout_wrapper_named_after_its_sidebar_is_not_thrown_away_with_the_content",
        ),
        pytest.param(
            ARTICLE_PAGE,
            "# Launch day\n\nBy Ada\n\nWe launched the product today after a year of careful work.",
            id="an_articles_own_header_is_kept_but_the_site_header_is_not",
        ),
        pytest.param(
            "<html><body><main><p>Visible <span hidden>HIDDEN</span>text<!-- COMMENT --> continues"
            "<span style='display: none'>NONE</span> here.</p></main></body></html>",
            "Visible text continues here.",
            id="hidden_elements_and_comments_are_dropped_but_text_after_them_is_kept",
        ),
    ],
)
def test_an_html_page_extracts_to_its_main_text(page: str, text: str) -> None:
    assert extract(page.encode(), "text/html").text == text


def test_an_articles_title_is_its_own_heading_not_the_site_header() -> None:
    assert extract(ARTICLE_PAGE.encode(), "text/html").title == "Launch day"


def test_a_content_section_is_not_taken_for_furniture_because_of_its_heading_made_id() -> None:
    page = (
        "<html><body><main><p>An intro paragraph, longer than the section that follows it.</p>"
        "<section id='related-work'><div class='title'><h2>Related work"
        "</h2></div><p>Earlier studies measured this.</p></section><div id='sidebar-1'>SIDE</div></main></body></html>"
    )
    doc = extract(page.encode(), "text/html")
    assert doc.text.endswith("it.\n\n## Related work\n\nEarlier studies measured this.")


def test_html_charset_comes_from_the_meta_tag_when_not_declared() -> None:
    page = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1252"></head>'
    page += "<body><p>Déjà vu – “quoted”</p></body></html>"
    assert extract(page.encode("cp1252"), "text/html").text == "Déjà vu – “quoted”"


def test_xhtml_with_an_xml_declaration_is_read() -> None:
    page = '<?xml version="1.0" encoding="utf-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml"><body><p>Olá</p></body></html>'
    doc = extract(page.encode(), "application/xhtml+xml")
    assert (doc.text, doc.content_type) == ("Olá", "text/html")


def test_an_empty_html_document_extracts_to_no_text() -> None:
    assert extract(b"", "text/html").text == ""
    assert extract(b"<html><body><nav>menu</nav></body></html>", "text/html").text == ""


# --- PDF -----------------------------------------------------------------------------------------

TOPICS = (
    "Revenue grew in every region",
    "Costs fell after the merger",
    "Hiring slowed in the autumn",
    "Debt was refinanced at lower rates",
)


class _Report(FPDF):
    def header(self) -> None:
        self.set_font("Helvetica", size=9)
        self.cell(0, 8, "ACME Corp - Annual Report 2024", new_x="LMARGIN", new_y="NEXT")

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=9)
        self.cell(0, 8, f"Page {self.page_no()} of {{nb}}")


def report_pdf(topics: tuple[str, ...] = TOPICS, blank_page_after: int | None = None) -> bytes:
    pdf = _Report()
    pdf.set_title("Annual Report")
    for number, topic in enumerate(topics):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 6, f"{topic}.\n\nSection {number} explains why {topic.lower()} and what it means.")
        if number == blank_page_after:
            pdf.add_page()  # only the running header and footer
    return bytes(pdf.output())


def test_pdf_text_is_extracted_per_page_without_running_headers_and_footers() -> None:
    doc = extract(report_pdf(), "application/pdf")
    assert "ACME Corp" not in doc.text and "Page " not in doc.text
    assert doc.text.split("\n\n") == [
        f"{topic}.\nSection {n} explains why {topic.lower()} and what it means." for n, topic in enumerate(TOPICS)
    ]
    assert (doc.title, doc.content_type) == ("Annual Report", "application/pdf")


def test_pdf_page_spans_point_at_each_pages_text() -> None:
    doc = extract(report_pdf(), "application/pdf")
    assert [page.number for page in doc.pages] == [1, 2, 3, 4]
    for page, topic in zip(doc.pages, TOPICS, strict=True):
        assert doc.text[page.start : page.end].startswith(topic)
        assert doc.text[page.start : page.end].endswith("what it means.")
    assert doc.pages[0].start == 0 and doc.pages[-1].end == len(doc.text)


def test_a_pdf_page_without_text_keeps_the_numbers_of_the_pages_after_it() -> None:
    doc = extract(report_pdf(blank_page_after=1), "application/pdf")
    assert [page.number for page in doc.pages] == [1, 2, 4, 5]
    assert doc.text[doc.pages[2].start :].startswith(TOPICS[2])


def test_a_pdf_with_no_text_layer_is_rejected_as_no_text() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")  # a drawing, as a scanner would leave an image
    error = extraction_error(bytes(pdf.output()), "application/pdf")
    assert error.code == "no_text" and "OCR" in error.message


@pytest.mark.parametrize("data", [b"%PDF-1.4\nthis is not really a pdf", b"hello", report_pdf()[:300]])
def test_a_damaged_pdf_is_rejected_as_corrupt(data: bytes) -> None:
    assert extraction_error(data, "application/pdf").code == "corrupt_pdf"


def test_an_aes_encrypted_pdf_without_a_user_password_is_read() -> None:
    # Common for published reports: anyone may open them, only printing or copying is restricted.
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(0, 10, "Readable by anyone, printing restricted.")
    pdf.set_encryption(owner_password="owner", encryption_method=EncryptionMethod.AES_256)
    assert extract(bytes(pdf.output()), "application/pdf").text == "Readable by anyone, printing restricted."


def test_a_password_protected_pdf_is_rejected_as_encrypted() -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(0, 10, "secret text")
    pdf.set_encryption(owner_password="owner", user_password="user")
    assert extraction_error(bytes(pdf.output()), "application/pdf").code == "encrypted_pdf"


# --- DOCX ----------------------------------------------------------------------------------------


def policy_docx(title: str = "Travel Policy") -> bytes:
    document = docx.Document()
    document.core_properties.title = title
    document.add_heading("Travel Policy", level=1)
    document.add_paragraph("Employees may travel when it serves the business.")
    document.add_heading("Booking", level=2)
    document.add_paragraph("Book through the portal.", style="List Bullet")
    document.add_paragraph("Keep receipts.", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for (row, col), text in {(0, 0): "Class", (0, 1): "Allowed", (1, 0): "Economy", (1, 1): "Always"}.items():
        table.cell(row, col).text = text
    document.add_heading("Exceptions", level=6)
    document.add_paragraph("Ask   your manager.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_headings_paragraphs_lists_and_tables_are_extracted_in_order() -> None:
    doc = extract(policy_docx(), DOCX)
    assert doc.text == (
        "# Travel Policy\n\nEmployees may travel when it serves the business.\n\n## Booking\n\n"
        "- Book through the portal.\n- Keep receipts.\n\nClass | Allowed\nEconomy | Always\n\n"
        "###### Exceptions\n\nAsk your manager."
    )
    assert doc.title == "Travel Policy"


def test_a_merged_docx_table_cell_is_rendered_once() -> None:
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).merge(table.cell(0, 2)).text = "Quarterly figures"
    for col, text in enumerate(("Q1", "Q2", "Q3")):
        table.cell(1, col).text = text
    buffer = io.BytesIO()
    document.save(buffer)
    assert extract(buffer.getvalue(), DOCX).text == "Quarterly figures\nQ1 | Q2 | Q3"


def test_docx_title_falls_back_to_the_first_heading() -> None:
    assert extract(policy_docx(title=""), DOCX).title == "Travel Policy"


def test_a_damaged_docx_is_rejected_as_corrupt() -> None:
    broken = io.BytesIO()
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("word/document.xml", "<not-closed")
    assert extraction_error(broken.getvalue(), DOCX).code == "corrupt_docx"
    assert extraction_error(b"not a zip at all", DOCX).code == "corrupt_docx"


# --- JSON, JSON Lines, CSV -----------------------------------------------------------------------


def test_a_json_array_of_records_gives_one_paragraph_per_record_from_the_text_fields() -> None:
    records = [{"id": 1, "text": "First record."}, {"id": 2, "body": "Second record."}, {"id": 3, "other": "skip"}]
    doc = extract(json.dumps(records).encode(), "application/json")
    assert doc.text == "First record.\n\nSecond record."


def test_json_text_fields_may_be_dotted_paths_through_objects_and_lists() -> None:
    record = {"title": "FAQ", "answer": {"text": "Yes."}, "notes": [{"text": "Note one."}, {"text": "Note two."}]}
    doc = extract(
        json.dumps(record).encode(),
        "application/json",
        options=ExtractOptions(json_text_fields=("answer.text", "notes.text")),
    )
    assert doc.text == "Yes.\n\nNote one.\n\nNote two."
    assert doc.title == "FAQ"


def test_json_lines_records_are_joined_as_paragraphs() -> None:
    lines = b'{"content": "Line one."}\n\n{"content": "Line two."}\n"A bare string."\n'
    doc = extract(lines, "application/jsonl")
    assert (doc.text, doc.content_type) == ("Line one.\n\nLine two.\n\nA bare string.", "application/x-ndjson")


def test_json_without_any_configured_text_field_names_the_fields_it_looked_for() -> None:
    error = extraction_error(b'[{"message": "hi"}]', "application/json")
    assert error.code == "no_text_fields" and "text, content, body" in error.message


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b'{"text": "x"', "application/json"), (b'{"text": "ok"}\n{broken\n', "application/x-ndjson")],
)
def test_invalid_json_is_rejected_with_the_parse_error(data: bytes, content_type: str) -> None:
    error = extraction_error(data, content_type)
    assert error.code == "invalid_json"
    assert content_type == "application/json" or "line 2" in error.message


CSV = b'name,city,comment\nAda,London,"Wrote the first program, in 1843."\nAlan,,Broke codes.\n'


def test_csv_rows_are_rendered_as_column_value_lines_by_default() -> None:
    doc = extract(CSV, "text/csv")
    assert doc.text == (
        "name: Ada\ncity: London\ncomment: Wrote the first program, in 1843.\n\nname: Alan\ncomment: Broke codes."
    )


def test_csv_text_columns_pick_the_columns_that_hold_the_text() -> None:
    doc = extract(CSV, "text/csv", options=ExtractOptions(csv_text_columns=("Comment",)))
    assert doc.text == "Wrote the first program, in 1843.\n\nBroke codes."


def test_csv_with_semicolons_or_tabs_is_read() -> None:
    assert extract(b"a;b\n1;x y\n", "text/csv").text == "a: 1\nb: x y"
    assert extract(b"a\tb\n1\tx y\n", "text/tab-separated-values").text == "a: 1\nb: x y"


def test_csv_text_columns_missing_from_the_header_are_named() -> None:
    error = extraction_error(CSV, "text/csv", options=ExtractOptions(csv_text_columns=("body",)))
    assert error.code == "unknown_columns" and "body" in error.message and "name, city, comment" in error.message


# --- detection, limits, errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "filename", "expected"),
    [
        (b"%PDF-1.7\n...", "", "application/pdf"),
        (b"<!DOCTYPE html><html><body>x</body></html>", "", "text/html"),
        (codecs.BOM_UTF8 + b"  <html><p>x</p></html>", "", "text/html"),
        (b'[{"text": "x"}]', "", "application/json"),
        (b'{"text": "a"}\n{"text": "b"}\n', "", "application/x-ndjson"),
        (b"just some words", "", "text/plain"),
        (b"a,b\n1,2\n", "data.CSV", "text/csv"),
        (b"# Title", "notes/readme.md", "text/markdown"),
        (b"x", "C:\\docs\\page.htm", "text/html"),
    ],
)
def test_undeclared_content_is_recognised_by_its_bytes_or_file_name(data: bytes, filename: str, expected: str) -> None:
    assert detect_media_type(data, "application/octet-stream", filename=filename)[0] == expected
    assert detect_media_type(data, "", filename=filename)[0] == expected


def test_an_undeclared_docx_is_recognised_inside_its_zip() -> None:
    doc = extract(policy_docx(), "application/octet-stream")
    assert doc.content_type == DOCX and doc.text.startswith("# Travel Policy")


def test_the_declared_type_wins_over_the_file_name() -> None:
    assert extract(b"# not a heading in plain text", "text/plain", filename="x.md").content_type == "text/plain"


def test_content_type_parameters_and_case_are_understood() -> None:
    assert detect_media_type(b"", 'Text/HTML; Charset="ISO-8859-1"') == ("text/html", "ISO-8859-1")


@pytest.mark.parametrize(
    ("data", "content_type", "in_message"),
    [
        (b"x", "image/png", "image/png"),
        (b"x", "application/msword", "application/msword"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "application/octet-stream", "PNG image"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "", ".docx"),
    ],
)
def test_unsupported_types_are_rejected_with_a_reason(data: bytes, content_type: str, in_message: str) -> None:
    error = extraction_error(data, content_type)
    assert error.code == "unsupported_type" and in_message in error.message


def test_a_zip_that_is_not_a_word_document_is_unsupported() -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "hello")
    assert extraction_error(archive.getvalue(), "application/octet-stream").code == "unsupported_type"


def test_content_over_the_byte_limit_is_too_large_before_it_is_parsed() -> None:
    error = extraction_error(b"%PDF-" + b"x" * 100, "application/pdf", options=ExtractOptions(max_bytes=50))
    assert error.code == "too_large" and "105" in error.message and "50" in error.message


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"\x00\xff" * 300, "text/html"),
        (b"\x00\xff" * 300, "text/csv"),
        (b"\x00\xff" * 300, "application/json"),
        (b"PK\x03\x04garbage", DOCX),
        (b"%PDF-\x00\x00", "application/pdf"),
        (b"\x00\xff" * 300, "application/octet-stream"),
    ],
)
def test_garbage_in_any_format_is_an_extraction_error_never_a_crash(data: bytes, content_type: str) -> None:
    with pytest.raises(ExtractionError):
        extract(data, content_type)


def test_extraction_error_is_a_value_error_with_a_code() -> None:
    error = ExtractionError("no_text", "nothing to read")
    assert isinstance(error, ValueError)
    assert (error.code, str(error)) == ("no_text", "nothing to read")
    assert Page(number=1, start=0, end=3) == Page(1, 0, 3)


def test_a_heading_whose_text_is_a_table_of_contents_backlink_keeps_its_text() -> None:
    page = (b"<html><body><div role='main'><h1>asyncio</h1><p>Intro text that is long enough to matter.</p>"
            b"<h2><a class='toc-backref' href='#id1'>Coroutines</a></h2><p>Coroutines are declared with async.</p>"
            b"</div></body></html>")
    text = extract(page, "text/html").text
    assert "## Coroutines" in text and "Coroutines are declared" in text


def test_a_manual_page_keeps_every_section_and_its_name_line_though_one_section_is_most_of_it() -> None:
    # asciidoc's manual pages (Debian's git-doc): the title and NAME in a header, then one div.sect1
    # per section, OPTIONS often most of the text.
    options = "".join(
        f"<dt>--option-{i}</dt><dd><p>Does thing number {i} to the repository.</p></dd>" for i in range(60)
    )
    page = f"""<html><head><title>git-clone(1)</title></head><body>
      <div id="header"><h1>git-clone(1) Manual Page</h1><h2>NAME</h2>
        <div class="sectionbody"><p>git-clone - Clone a repository into a new directory</p></div></div>
      <div id="content">
        <div class="sect1"><h2>SYNOPSIS</h2><div class="sectionbody"><pre>git clone [options] repo</pre></div></div>
        <div class="sect1"><h2>DESCRIPTION</h2><div class="sectionbody">
          <p>Clones a repository into a newly created directory.</p></div></div>
        <div class="sect1"><h2>OPTIONS</h2><div class="sectionbody"><dl>{options}</dl></div></div>
      </div>
      <div id="footer"><div id="footer-text">Last updated 2023-01-01</div></div></body></html>"""
    text = extract(page.encode(), "text/html").text
    assert text.startswith("# git-clone(1) Manual Page")
    assert "git-clone - Clone a repository into a new directory" in text
    assert "Clones a repository into a newly created directory." in text and "--option-59" in text
    assert "Last updated" not in text
