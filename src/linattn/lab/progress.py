"""Progress bars for long measurements: tqdm where it is installed, plain printed messages where not
(a bare GPU machine may have torch alone)."""
try:
    from tqdm.auto import tqdm
except ImportError:
    tqdm = None


class NoProgressBar(list):
    """Stands in for tqdm where it is not installed: iterates, and prints what would be written."""
    write = staticmethod(print)

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass


def progress_bar(items, desc, *, enabled=True):
    """tqdm over `items` (hidden when not `enabled`), or a NoProgressBar without tqdm."""
    return tqdm(items, desc=desc, disable=not enabled) if tqdm else NoProgressBar(items)
