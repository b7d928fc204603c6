"""A report page as a real browser lays it out: Debian's headless chromium measures the page and
its images with a probe script added to a copy of the page (the report itself has no script)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PROBE = """<script>addEventListener('load', () => {
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({page: document.documentElement.scrollWidth, view: innerWidth,
    images: [...document.images].map(i => ({width: i.naturalWidth, height: i.naturalHeight,
                                            right: i.getBoundingClientRect().right, alt: i.alt}))});
  document.body.appendChild(probe);
});</script>"""


def layout(page: Path, *, width: int = 800) -> dict:
    """The page laid out in a window ``width`` pixels wide: ``page`` (the document's scroll width),
    ``view`` (the window's), and each image's decoded size, right edge and alt text."""
    probed = page.with_name(f"probed-{page.name}")
    probed.write_text(page.read_text().replace("</body>", f"{PROBE}</body>"))
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},900", "--dump-dom", probed.absolute().as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, done.stderr[-2000:]
    return json.loads(found.group(1).replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def coloured_pixels(png: bytes) -> int:
    """Pixels with a saturated colour (bars, lines, areas): text, axes and white are grey."""
    import io

    from matplotlib.image import imread

    rgb = imread(io.BytesIO(png), format="png")[..., :3]
    return int(((rgb.max(axis=2) - rgb.min(axis=2)) > 0.3).sum())


def images(page: str) -> list[tuple[str, bytes]]:
    """The page's embedded PNGs, each with its alt text."""
    return [(alt, base64.b64decode(data))
            for alt, data in re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([^"]*)"', page)]
