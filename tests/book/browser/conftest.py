"""Session fixtures of the browser suite, shared by its test modules: one Chromium, one served
build of the book (online, offline, and offline opened from disk)."""
import os
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

import webtools
from webtools import web_assets


def unavailable(reason):
    """Skip for a reader who cannot install the browser; fail in CI, where it must be there."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI is set: the browser suite must run there)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def web_ready():
    if webtools.chromium_path() is None:
        unavailable("Chromium not found: `make browser-deps` installs Debian's chromium when run as "
                    "root; or set LINATTN_CHROMIUM to a Chromium binary")
    missing = web_assets.missing_assets()
    if missing:
        unavailable(f"browser assets {[a.spec for a in missing]} not installed: run `make browser-deps`")


@pytest.fixture(scope="session")
def browser(web_ready):
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=webtools.chromium_path(),
                                              args=webtools.CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def online_edition(built_book, web_ready):
    """(html folder, server) of the CI build, as it goes online: the CDN answered from npm."""
    html = built_book.html
    if not (html / "index.html").is_file():
        pytest.fail(f"the book build wrote no HTML (log: {html.parent.parent / 'build.log'})")
    with webtools.StaticServer(html) as server:
        yield html, server


@pytest.fixture(scope="session")
def offline_edition(online_edition):
    """(html folder, server) of the offline edition made from the CI build, as `make book-offline` does."""
    html, _ = online_edition
    offline = web_assets.make_offline(html, html.parent / "html-offline")
    with webtools.StaticServer(offline) as server:
        yield offline, server


class _Files:
    """Stands in for a server when the offline edition is opened straight from disk (file://)."""

    def __init__(self, folder):
        self.url = Path(folder).resolve().as_uri() + "/"


@pytest.fixture(scope="session")
def offline_files_edition(offline_edition):
    """The offline edition opened from the file system, as from a USB stick, without a server."""
    html, _ = offline_edition
    return html, _Files(html)
