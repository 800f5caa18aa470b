"""Every service's interactive docs through the gateway, on the whole platform (tests/e2e/ftd_stack.py),
in Debian's Chromium, offline: /docs/<service> renders the service's operations from its document at
/openapi/<service>.json and Swagger UI's files at /docs-assets/<service>/ (all through the
gateway), "Authorize" takes a user token, and "Try it out" + "Execute" on a list route answers 200.
Any request to another host fails the run. The browser part is frontend/e2e/docs.mjs
(playwright-core, the UI's dependency, driving /usr/bin/chromium; never a downloaded browser).
job-api's page at /docs loads its files through the gateway too."""

import json
import os
import re
import subprocess
from collections.abc import Iterator

import httpx
import pytest
from browser import CHROMIUM, NODE, require_browser, skip_without_browser
from ftd_stack import FRONTEND, Stack, full_stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600), skip_without_browser]


@pytest.fixture(autouse=True)
def _browser_present() -> None:
    require_browser()


# A list route of each service, which a signed-in user may call with no parameters.
PAGES = [
    {"service": "job-api", "list": "/api/finetune/jobs"},
    {"service": "data-service", "list": "/api/finetune/datasets"},
    {"service": "registry-service", "list": "/api/models"},
    {"service": "model-server", "list": "/api/keys"},
    {"service": "webhook-service", "list": "/api/webhooks"},
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with full_stack(tmp_path_factory.mktemp("docs"), worker_job_types=None) as running:
        yield running


def test_every_services_docs_load_authorize_and_execute_through_the_gateway(stack: Stack) -> None:
    assert NODE is not None
    result = subprocess.run(
        [NODE, "e2e/docs.mjs"],
        cwd=FRONTEND,
        env={
            **os.environ,
            "E2E_BASE_URL": stack.base_url,
            "E2E_TOKEN": stack.token("docs-user"),
            "E2E_CHROMIUM": str(CHROMIUM),
            "E2E_DOCS": json.dumps(PAGES),
        },
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    checked = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [c["service"] for c in checked] == [p["service"] for p in PAGES]
    for page in checked:
        assert page["operations"] > 0
        assert page["status"] == 200


def test_the_docs_pages_point_at_their_own_service(stack: Stack) -> None:
    """Without a browser: each page names its document and its files at gateway paths that reach
    the same service, and those answer; job-api's /docs loads its files too (not the UI's)."""
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        for page in PAGES:
            service = page["service"]
            html = client.get(f"/docs/{service}")
            assert html.status_code == 200, html.text
            assert f"url: '/openapi/{service}.json'" in html.text
            assets = re.findall(r'(?:href|src)="(/docs-assets/[^"]+)"', html.text)
            assert len(assets) == 3, assets
            for asset in assets:
                assert asset.startswith(f"/docs-assets/{service}/"), asset
                got = client.get(asset)
                assert got.status_code == 200, asset
                assert not got.headers["content-type"].startswith("text/html"), asset
            document = client.get(f"/openapi/{service}.json").json()
            assert document["info"]["title"].endswith(service)
            assert "userToken" in document["components"]["securitySchemes"]
        html = client.get("/docs")
        assert html.status_code == 200
        assert "url: '/openapi.json'" in html.text
        for asset in re.findall(r'(?:href|src)="(/docs-assets/[^"]+)"', html.text):
            got = client.get(asset)
            assert got.status_code == 200, asset
            assert not got.headers["content-type"].startswith("text/html"), asset
        assert client.get("/openapi.json").json()["info"]["title"].endswith("job-api")
