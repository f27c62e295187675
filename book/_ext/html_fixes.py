"""Three fixes to the HTML that Jupyter Book 1 writes, so that its pages load without JavaScript errors.

1. Inline scripts added after the builder starts (sphinx-thebe's `const THEBE_JS_URL = ...`,
   sphinx-togglebutton's selector) are written twice into every page: Sphinx 7 stores such a
   script once with the file name None and, when it prepares the pages, adds it again from its
   registry with the file name '' — two entries that it does not see as equal. A second `const`
   declaration of the same name is a SyntaxError, so the browser reports
   "Identifier 'THEBE_JS_URL' has already been declared" on every page. We drop the repeats.
2. The ipywidgets HTML manager typesets widget labels with MathJax 2's `MathJax.Hub.Queue`, which
   MathJax 3 (the version Sphinx loads) does not have, so every widget with a description throws
   "Cannot read properties of undefined (reading 'Queue')" on pages with equations. Right after
   Sphinx's MathJax configuration we add a `MathJax.Hub.Queue` that hands the element to MathJax 3.
3. The HTML manager (embed-amd.js) derives where its icon fonts live from the require.js URL of
   its own module, which require.js places next to the page, so the fonts 404. We map that module
   path to the folder of the configured embed-amd.js, so the fonts come from where the script does.
"""
import json
import posixpath

MATHJAX_CONFIG_PREFIX = "window.MathJax = "

# Runs after `window.MathJax = {config}` and before MathJax 3 itself (loaded with defer). MathJax 3
# moves that config object to MathJax.config when it starts, so `ready` installs the Hub again.
MATHJAX2_HUB_SHIM = """(() => {
  const hub = {Queue(command) {
    const element = Array.isArray(command) ? command[2] : undefined;
    const mathjax = window.MathJax;
    if (element && mathjax.startup && mathjax.startup.promise && mathjax.typesetPromise) {
      mathjax.startup.promise = mathjax.startup.promise.then(() => mathjax.typesetPromise([element]));
    }
  }};
  const config = window.MathJax;
  const ready = config.startup && config.startup.ready;
  config.Hub = hub;
  config.startup = Object.assign({}, config.startup, {ready() {
    if (ready) { ready(); } else { window.MathJax.startup.defaultReady(); }
    window.MathJax.Hub = hub;
  }});
})();"""


def _script_key(script):
    attributes = tuple(sorted(script.attributes.items()))
    return (script.filename or "", script.priority, attributes)


def fix_page_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, fixed = set(), []
    for script in scripts:
        key = _script_key(script)
        if key in seen:
            continue
        seen.add(key)
        if (script.filename or "").endswith("/embed-amd.js"):
            paths = {"@jupyter-widgets/html-manager/dist": posixpath.dirname(script.filename)}
            fixed.append(type(script)(None, priority=script.priority,
                                      body=f"window.require && window.require.config({{paths: {json.dumps(paths)}}});"))
        fixed.append(script)
        if script.attributes.get("body", "").startswith(MATHJAX_CONFIG_PREFIX):
            fixed.append(type(script)(None, priority=script.priority, body=MATHJAX2_HUB_SHIM))
    context["script_files"] = fixed


def setup(app):
    # after Sphinx's own html-page-context handlers, which add the MathJax scripts
    app.connect("html-page-context", fix_page_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
