"""The page's routes: `/` answers the page and `/static/` its assets, with no token and no internet reference."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from cloud.api import create_app
from cloud.api.web import WEB_DIR
from cloud.service import CloudService
from cloud.settings import CloudSettings


async def test_index_and_assets_are_served_and_reference_nothing_outside(tmp_path: Path) -> None:
    """GET / is the page, every asset it names is served from /static/, and no asset points to another host."""
    settings = CloudSettings.model_validate({"data_dir": str(tmp_path / "cloud"), "ingest_workers": 0})
    service = CloudService(settings)
    transport = httpx.ASGITransport(app=create_app(service, run_background=False))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gridwatch") as client:
            index = await client.get("/")
            assert index.status_code == 200
            assert index.headers["content-type"].startswith("text/html")
            assert 'lang="zh-CN"' in index.text
            assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', index.text)
            assert sorted(assets) == ["/static/app.css", "/static/app.js"]
            for path in [*assets, "/static/i18n.js"]:
                got = await client.get(path)
                assert got.status_code == 200, path
            assert (await client.get("/static/nope.js")).status_code == 404
    finally:
        service.close()
    for asset in WEB_DIR.iterdir():
        text = asset.read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), asset.name
