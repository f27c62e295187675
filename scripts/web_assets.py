"""The book's browser assets (MathJax, require.js, the ipywidgets HTML manager) as local npm packages.

The built book loads these from the jsDelivr CDN at the pinned URLs in `_config.yml`. jsDelivr
serves npm packages file for file, so the same versions installed with npm give byte-identical
files: the browser tests answer the CDN URLs from them, and the offline edition bundles them.

    python scripts/web_assets.py install [ASSETS_DIR]      npm-install the pinned versions into ASSETS_DIR
                                                           (default .cache/web-assets)
    python scripts/web_assets.py offline SRC DEST [ASSETS_DIR]
                                                           copy the built HTML in SRC to DEST, with the
                                                           assets bundled and every CDN URL made local
"""
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "_config.yml"
DEFAULT_ASSETS_DIR = ROOT / ".cache" / "web-assets"
NPM_CDN = "https://cdn.jsdelivr.net/npm/"
VENDOR = Path("_static") / "vendor"  # inside the offline edition's HTML folder
_NPM_URL = re.compile(r"^(?P<package>(@[^/@]+/)?[^/@]+)@(?P<version>[^/]+)/(?P<path>.+)$")


@dataclass(frozen=True)
class Asset:
    url: str
    package: str
    version: str
    path: str  # the file inside the npm package

    @property
    def spec(self):
        return f"{self.package}@{self.version}"


def parse_cdn_url(url):
    """Split a jsDelivr npm URL into an Asset; ValueError for anything else."""
    if not url.startswith(NPM_CDN):
        raise ValueError(f"not a jsDelivr npm URL (expected it to start with {NPM_CDN}): {url}")
    match = _NPM_URL.match(url[len(NPM_CDN):])
    if match is None:
        raise ValueError(f"expected {NPM_CDN}<package>@<exact version>/<file>, got {url}")
    return Asset(url, match["package"], match["version"], match["path"])


def configured_assets(config_path=CONFIG):
    """The assets `_config.yml` pins: its mathjax_path and the keys of nb_ipywidgets_js."""
    config = yaml.safe_load(Path(config_path).read_text(encoding="utf8"))
    sphinx = (config.get("sphinx") or {}).get("config") or {}
    if "mathjax_path" not in sphinx or "nb_ipywidgets_js" not in sphinx:
        raise ValueError(f"{config_path} must set sphinx.config.mathjax_path and nb_ipywidgets_js")
    urls = [sphinx["mathjax_path"], *sphinx["nb_ipywidgets_js"]]
    assets = [parse_cdn_url(url) for url in urls]
    for asset in assets:
        if not re.fullmatch(r"\d+\.\d+\.\d+", asset.version):
            raise ValueError(f"pin an exact version in {asset.url} (the tests install that version)")
    return assets


def node_modules(assets_dir=DEFAULT_ASSETS_DIR):
    return Path(assets_dir) / "node_modules"


def installed_version(package, assets_dir=DEFAULT_ASSETS_DIR):
    manifest = node_modules(assets_dir) / package / "package.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text(encoding="utf8"))["version"]


def missing_assets(assets_dir=DEFAULT_ASSETS_DIR, config_path=CONFIG):
    """The pinned assets that assets_dir lacks at their pinned version."""
    return [a for a in configured_assets(config_path)
            if installed_version(a.package, assets_dir) != a.version
            or not (node_modules(assets_dir) / a.package / a.path).is_file()]


def install(assets_dir=DEFAULT_ASSETS_DIR, config_path=CONFIG):
    """npm-install the pinned versions into assets_dir/node_modules (does nothing when they are there)."""
    missing = missing_assets(assets_dir, config_path)
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is needed to fetch the browser assets (Debian: apt-get install npm)")
    Path(assets_dir).mkdir(parents=True, exist_ok=True)
    specs = [a.spec for a in configured_assets(config_path)]
    subprocess.run([npm, "install", "--prefix", str(assets_dir), "--no-save", "--no-package-lock",
                    "--no-audit", "--no-fund", "--loglevel=error", *specs], check=True)
    still_missing = missing_assets(assets_dir, config_path)
    if still_missing:
        raise RuntimeError(f"npm did not install {[a.spec for a in still_missing]} into {assets_dir}")


def local_file(url, assets_dir=DEFAULT_ASSETS_DIR):
    """The installed file that a jsDelivr npm URL names, or None if that package version is absent."""
    try:
        asset = parse_cdn_url(url.split("?")[0].split("#")[0])
    except ValueError:
        return None
    if installed_version(asset.package, assets_dir) != asset.version:
        return None
    package_dir = (node_modules(assets_dir) / asset.package).resolve()
    path = (package_dir / asset.path).resolve()
    if package_dir not in path.parents or not path.is_file():
        return None
    return path


def _drop_integrity(script_tag, vendor):
    if f'src="{vendor}/' not in script_tag:
        return script_tag
    return re.sub(r'\s(?:integrity|crossorigin)="[^"]*"', "", script_tag)


def make_offline(src_html, dest_html, assets_dir=DEFAULT_ASSETS_DIR, config_path=CONFIG):
    """Copy the built book to dest_html with every pinned asset bundled under _static/vendor/.

    Each page's CDN URLs become relative links to the bundled copies. The integrity and
    crossorigin attributes of those scripts go too: they guard against a changed CDN file, and a
    browser refuses crossorigin scripts on pages opened from disk (file://), which is how a
    workshop may hand the edition out. Raises RuntimeError if any page still loads a script or
    stylesheet from outside.
    """
    src_html, dest_html = Path(src_html), Path(dest_html)
    assets = configured_assets(config_path)
    missing = missing_assets(assets_dir, config_path)
    if missing:
        raise RuntimeError(f"install the browser assets first (make browser-deps): {[a.spec for a in missing]}")
    if not (src_html / "index.html").is_file():
        raise ValueError(f"{src_html} is not a built book (no index.html)")
    if dest_html.exists():
        shutil.rmtree(dest_html)
    shutil.copytree(src_html, dest_html)
    for asset in assets:
        shutil.copytree(node_modules(assets_dir) / asset.package, dest_html / VENDOR / asset.spec,
                        ignore=shutil.ignore_patterns("node_modules", "*.map"))
    prefixes = {NPM_CDN + a.spec + "/": a.spec + "/" for a in assets}
    for page in dest_html.rglob("*.html"):
        if VENDOR in page.relative_to(dest_html).parents:
            continue
        vendor = Path(os.path.relpath(dest_html / VENDOR, page.parent)).as_posix()
        text = original = page.read_text(encoding="utf8")
        for cdn_prefix, local_prefix in prefixes.items():
            text = text.replace(cdn_prefix, f"{vendor}/{local_prefix}")
        # the widget manager fetches any widget module it does not bundle from this base URL
        text = text.replace(f'data-jupyter-widgets-cdn="{NPM_CDN}"', f'data-jupyter-widgets-cdn="{vendor}/"')
        text = re.sub(r"<script\b[^>]*>", lambda tag: _drop_integrity(tag[0], vendor), text)
        if text != original:
            page.write_text(text, encoding="utf8")
        outside = re.findall(r'<(?:script|link)\b[^>]*?\b(?:src|href)="((?:https?:)?//[^"]*)"', text)
        if outside:
            raise RuntimeError(f"{page} still loads from outside: {outside}")
    return dest_html


def main(argv):
    if argv[:1] == ["install"] and len(argv) <= 2:
        install(*(argv[1:] or [DEFAULT_ASSETS_DIR]))
        print(f"browser assets ready in {node_modules(*(argv[1:] or [DEFAULT_ASSETS_DIR]))}")
    elif argv[:1] == ["offline"] and len(argv) in (3, 4):
        out = make_offline(*argv[1:])
        print(f"offline edition at {out.resolve()}: open its index.html, or serve it with "
              f"python3 -m http.server --directory {out} 8000")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
