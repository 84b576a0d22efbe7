"""Shared pieces of the browser tests: Debian's Chromium, logging in through the form, stand-in map tiles."""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import AsyncIterator
from typing import Final

from playwright.async_api import Browser, Page, Route, async_playwright, expect

from cloud.grid import default_district

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DISTRICT: Final = default_district()
GRID: Final = "41010210100101"  # contains (34.7981, 113.5312)
PASSWORD: Final = "password-1"
LIVE_MS: Final = 2000  # an alert must be on screen within this
TILE_HOST: Final = "http://tiles.test"  # never resolved: the browser context answers it


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """Encode a plain-colour RGB PNG (a stand-in map tile)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


TILE_PNG: Final = png(256, 256, (40, 52, 64))


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Launch Debian's Chromium (never a downloaded browser)."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def open_as(
    browser: Browser, base: str, username: str, password: str = PASSWORD, tiles: list[str] | None = None
) -> Page:
    """Open the page in a fresh browser context and log in through the form; serve TILE_HOST tiles into `tiles`."""
    context = await browser.new_context(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
    if tiles is not None:

        async def serve_tile(route: Route) -> None:
            tiles.append(route.request.url)
            await route.fulfill(status=200, content_type="image/png", body=TILE_PNG)

        await context.route(f"{TILE_HOST}/**", serve_tile)
    page = await context.new_page()
    await page.goto(base + "/")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("#login-btn")
    await expect(page.locator("#app")).to_be_visible()
    await expect(page.locator("#map path.geo.grid")).to_have_count(len(DISTRICT.grids))
    return page
