"""docs/gallery.png: the example's HTML gallery in headless Chromium, its header and bucket table
above the first gallery of misses (the sections between them hidden for the picture only).

    cd example_project
    pytest --erran-model=models/v2.onnx --erran-analyze --erran-html=/tmp/gallery.html
    python ../docs/screenshot.py /tmp/gallery.html ../docs/gallery.png

Needs Chromium (Debian: apt-get install -y chromium); drives it with tests/chromium.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from chromium import Chromium  # noqa: E402

KEEP = "section#buckets, section.gallery.missed"


def main() -> None:
    html, png = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
    with Chromium() as browser:
        page = browser.open(html, width=1100, height=900)
        page.evaluate(f"""(() => {{
            const keep = new Set(document.querySelectorAll({KEEP!r}));
            const first = document.querySelector("section.gallery.missed");
            for (const s of document.querySelectorAll("main section"))
                if (!keep.has(s) || (s.matches("section.gallery.missed") && s !== first)) s.style.display = "none";
            return true;
        }})()""")
        page.screenshot(png)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
