"""The built book in headless Chromium: every page, online (CDN answered from npm) and offline
(served, and opened from disk).

For each page: no JavaScript errors, every equation typeset, every image loaded, every widget
view rendered, every precomputed slider switching views from the keyboard, the Colab launch link
on notebook pages, no request leaving the machine; for each build: no broken internal link.
Full-page screenshots go to screenshots/<edition>/ for a person to look at.
"""
from collections import defaultdict

import pytest
from playwright.sync_api import Error as PlaywrightError

import webtools
from webtools import ROOT, web_assets

pytestmark = pytest.mark.browser

EDITIONS = ("online", "offline", "offline_files")
PAGES = webtools.toc_pages() + webtools.EXTRA_PAGES
SCREENSHOTS = ROOT / "screenshots"
SCREENSHOT_EDITIONS = ("online", "offline")  # the files edition shows the same pages as "offline"
TIMEOUT_MS = 30_000


@pytest.fixture
def edition(request):
    return request.getfixturevalue(f"{request.param}_edition")


def open_page(browser, server, *, serve_cdn):
    """A fresh context (empty storage, like a first visit) with requests routed and errors logged."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    log = defaultdict(list)
    router = webtools.Router(server.url, serve_cdn=serve_cdn)
    page.route("**/*", router)
    page.on("pageerror", lambda error: log["JavaScript errors"].append(str(error)))
    page.on("console", lambda msg: msg.type == "error" and log["console errors"].append(msg.text))
    page.on("response", lambda r: r.status >= 400 and log["failed requests"].append(f"{r.status} {r.url}"))
    return context, page, router, log


def wait_until_settled(page, log):
    """Wait for MathJax's first typesetting pass, the widget views and the images."""
    if page.evaluate("() => !!document.querySelector('.math')"):
        try:
            page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                                   timeout=15_000)
            page.evaluate("() => MathJax.startup.promise.then(() => true)")
        except PlaywrightError as error:
            log["equations"].append(f"MathJax did not start: {error.message.splitlines()[0]}")
    if page.evaluate("() => !!document.querySelector('script[type=\"application/vnd.jupyter.widget-view+json\"]')"):
        try:
            page.wait_for_function(webtools.WIDGETS_RENDERED, timeout=15_000)
        except PlaywrightError:
            log["widgets"].append("not every widget view rendered within 15 s")
    if page.evaluate("() => window.MathJax && MathJax.startup && !!MathJax.startup.promise"):
        page.evaluate("() => MathJax.startup.promise.then(() => true)")  # labels typeset by widgets
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.evaluate(webtools.IMAGES_SETTLED)
    page.evaluate("() => window.scrollTo(0, 0)")


def check_static_sliders(page, html, log):
    """Move every precomputed slider through all its positions with the keyboard."""
    sliders, problems = webtools.static_sliders(html)
    log["sliders"].extend(problems)
    if log["widgets"]:
        return  # already reported: the sliders cannot work if the widgets did not render
    for number, slider in enumerate(sliders, 1):
        where = (slider["view"], slider["slider"], slider["stack"])
        name = f"static slider {number} ({slider['labels'][0]}..{slider['labels'][-1]})"
        state = page.evaluate(webtools.SLIDER_STATE, where)
        if state is None:
            log["sliders"].append(f"{name}: not found in the rendered page")
            continue
        if not webtools.shows(state, slider["expected"][0]):
            log["sliders"].append(f"{name}: does not show its first view before it is moved")
        if not page.evaluate(webtools.SLIDER_HANDLE, [slider["view"], slider["slider"]]):
            log["sliders"].append(f"{name}: its handle cannot take the keyboard focus")
            continue
        moves = [("ArrowRight", i) for i in range(1, len(slider["labels"]))]
        if len(slider["labels"]) > 1:
            moves.append(("Home", 0))
        for key, index in moves:
            page.keyboard.press(key)
            try:
                page.wait_for_function(
                    """([where, label]) => { const s = (%s)(where); return s && s.readout === label; }"""
                    % webtools.SLIDER_STATE, arg=[list(where), slider["labels"][index]], timeout=5000)
            except PlaywrightError:
                log["sliders"].append(f"{name}: {key} did not move the readout to {slider['labels'][index]!r}")
                break
            state = page.evaluate(webtools.SLIDER_STATE, where)
            if not webtools.shows(state, slider["expected"][index]):
                log["sliders"].append(f"{name}: at {slider['labels'][index]!r} it does not show that position's view")
                break


def inspect(browser, edition, html_dir, server, docname):
    context, page, router, log = open_page(browser, server, serve_cdn=(edition == "online"))
    try:
        page.goto(server.url + docname + ".html", wait_until="load")
        wait_until_settled(page, log)
        if edition in SCREENSHOT_EDITIONS:
            shot = SCREENSHOTS / edition / (docname.replace("/", "--") + ".png")
            shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shot), full_page=True)
        log["equations"].extend(page.evaluate(webtools.MATH_PROBLEMS))
        log["images"].extend(page.evaluate(webtools.IMAGE_PROBLEMS))
        log["widgets"].extend(page.evaluate(webtools.WIDGET_ERRORS))
        check_static_sliders(page, (html_dir / f"{docname}.html").read_text(encoding="utf8"), log)
        if webtools.is_notebook(docname):
            expected = webtools.expected_colab_url(docname)
            links = page.evaluate(webtools.COLAB_LINKS)
            if links != [expected]:
                log["Colab link"].append(f"expected exactly one link to {expected}, found {links}")
            relative = expected.split("/blob/", 1)[1].split("/", 1)[1]
            if not (ROOT / relative).is_file():
                log["Colab link"].append(f"the link names {relative}, which is not in the repository")
        log["requests leaving the machine"].extend(router.blocked)
    finally:
        context.close()
    return {what: problems for what, problems in log.items() if problems}


def report(problems, shown=8):
    lines = []
    for what, found in problems.items():
        more = [f"... and {len(found) - shown} more"] if len(found) > shown else []
        lines.append(f"{what}:\n  " + "\n  ".join(found[:shown] + more))
    return "\n".join(lines)


@pytest.mark.parametrize("edition", EDITIONS, indirect=True)
@pytest.mark.parametrize("docname", PAGES)
def test_page_works_in_the_browser(browser, edition, docname, request):
    html_dir, server = edition
    name = request.node.callspec.params["edition"]
    assert (html_dir / f"{docname}.html").is_file(), f"{docname}.html was not built"
    problems = inspect(browser, name, html_dir, server, docname)
    assert not problems, f"{name} {docname}.html:\n{report(problems)}"


@pytest.mark.parametrize("edition", ["online", "offline"], indirect=True)
def test_no_broken_internal_links_or_anchors(edition):
    html_dir, _ = edition
    broken = webtools.broken_links(html_dir)
    assert not broken, "\n".join(f"{page}: {link} ({why})" for page, link, why in broken)


def test_every_built_page_is_checked(online_edition):
    html_dir, _ = online_edition
    unchecked = set(webtools.built_pages(html_dir)) - {f"{p}.html" for p in PAGES} - {"index.html"}
    assert not unchecked, f"pages the browser suite does not open: {sorted(unchecked)}"


def test_index_redirects_to_the_first_page(browser, online_edition):
    _, server = online_edition
    context, page, _, _ = open_page(browser, server, serve_cdn=True)
    try:
        page.goto(server.url + "index.html")
        page.wait_for_url(f"**/{PAGES[0]}.html")
    finally:
        context.close()


def test_offline_edition_names_no_cdn(offline_edition):
    offline, _ = offline_edition
    cdn = web_assets.NPM_CDN
    leftovers = [p.relative_to(offline) for p in offline.rglob("*.html")
                 if "_static/vendor" not in p.as_posix() and cdn in p.read_text(encoding="utf8")]
    assert not leftovers, f"pages that still name {cdn}: {leftovers}"
