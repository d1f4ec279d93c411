"""The web page served at `/`: self-contained, relative URLs only (ingress), locked down by a nonce CSP."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import aiohttp
import pytest
from conftest import FrameFeed
from faceanon.publish.http import HttpServer

pytestmark = pytest.mark.timeout(60)


async def fetch_page(headers: dict[str, str] | None = None) -> tuple[str, str]:
    server = HttpServer({"host": "127.0.0.1", "port": 0}, [FrameFeed("lobby")], "0.1")
    await server.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http, \
                http.get(f"http://127.0.0.1:{server.port}/", headers=headers) as r:
            assert r.status == 200 and r.content_type == "text/html"
            return await r.text(), r.headers["Content-Security-Policy"]
    finally:
        await server.stop()


async def test_page_is_self_contained_and_relative():
    page, csp = await fetch_page()
    # Links may point elsewhere (the docs); nothing may be loaded from there.
    loads = re.sub(r'<a href="https://[^"]+"', "<a", page)
    assert not re.search(r"https?://|//cdn|@import", loads), "the page must load nothing from elsewhere"
    # No absolute paths: under ingress the page lives below /api/hassio_ingress/<token>/.
    assert not re.search(r"""(src|href|fetch\()\s*=?\s*["']/""", page)
    assert '"api/cameras"' in page and '"/stream.mjpeg?t="' in page and '"api/login"' in page
    nonce = re.search(r"script-src 'nonce-([^']+)'", csp).group(1)
    assert page.count(f'nonce="{nonce}"') == 2  # the one style and the one script block
    assert "{{nonce}}" not in page and "<!--base-->" not in page
    assert "default-src 'none'" in csp and "frame-ancestors 'self'" in csp
    assert "privacy degraded" in page


async def test_each_load_gets_a_fresh_nonce():
    (_, first), (_, second) = await fetch_page(), await fetch_page()
    assert first != second


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
async def test_page_script_parses(tmp_path: Path):
    page, _ = await fetch_page()
    script = re.search(r"<script nonce=\"[^\"]+\">(.*?)</script>", page, re.S).group(1)
    path = tmp_path / "page.js"
    path.write_text(script)
    result = subprocess.run(["node", "--check", str(path)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
