"""The cheat sheet prints as a two-sided A4 handout: Chromium's print to PDF, A4, at most 2 pages,
its equations typeset by MathJax (no raw TeX left)."""
import re

import pytest

import webtools
from test_pages import open_page, wait_until_settled

pytestmark = pytest.mark.browser

DOCNAME = "book/cheatsheet"
MAX_PAGES = 2
_PAGE_OBJECT = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def pdf_page_count(pdf):
    """Pages of a PDF as Chromium writes it (one uncompressed /Type /Page dictionary per page)."""
    return len(_PAGE_OBJECT.findall(pdf))


def test_pdf_page_count_reads_chromium_pdfs(browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_content("<p>one</p><p style='break-before: page'>two</p><p style='break-before: page'>three</p>")
        assert pdf_page_count(page.pdf(format="A4")) == 3
    finally:
        context.close()


def test_cheatsheet_prints_on_two_a4_pages_with_typeset_math(browser, online_edition):
    html_dir, server = online_edition
    assert (html_dir / f"{DOCNAME}.html").is_file(), "the cheat sheet was not built"
    context, page, router, log = open_page(browser, server, serve_cdn=True)
    try:
        page.goto(server.url + DOCNAME + ".html", wait_until="load")
        wait_until_settled(page, log)
        typeset = page.evaluate("() => document.querySelectorAll('.math mjx-container').length")
        problems = page.evaluate(webtools.MATH_PROBLEMS)
        raw = page.evaluate("() => document.querySelector('.bd-article').innerText.includes('$$')")
        page.emulate_media(media="print")
        pdf = page.pdf(format="A4", print_background=False)
    finally:
        context.close()
    assert typeset >= 6, f"only {typeset} equations typeset by MathJax"
    assert not problems and not raw, problems or "raw $$ left in the page"
    assert not log["JavaScript errors"], log["JavaScript errors"]
    pages = pdf_page_count(pdf)
    assert 1 <= pages <= MAX_PAGES, f"the cheat sheet prints on {pages} A4 pages, more than {MAX_PAGES}"
