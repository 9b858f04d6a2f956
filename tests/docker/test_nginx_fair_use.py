"""game_stack's nginx configuration, rendered by Ansible and run by the web image's nginx: the /api
rate limit is per player as Caddy names it in X-Forwarded-For, and IPv6 players by their /64.

The container and the tag made here start with `tengen-svc-fairuse`/`svc-fairuse`; both are
removed afterwards (the layers stay in the build cache).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for_http
from tests.docker.test_service_images import BASE_IMAGE, docker
from tests.module_runner import template

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "game_stack"
TAG = "tengen/web:svc-fairuse"


@pytest.fixture(scope="module")
def nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """nginx with the stack's configuration: two /api requests per player (a rate of one a minute,
    a burst of one), and a
    backend address where nothing listens (an admitted request answers 502, a limited one 429)."""
    conf = template(
        f"{{{{ lookup('ansible.builtin.template', '{ROLE / 'templates' / 'nginx.conf.j2'}') }}}}",
        "-e",
        f"@{ROLE / 'defaults' / 'main.yml'}",
        "-e",
        json.dumps({"game_stack_nginx_api_rate": "1r/m", "game_stack_nginx_api_burst": 1}),
    )
    conf_dir = tmp_path_factory.mktemp("nginx")
    conf_dir.chmod(0o755)
    (conf_dir / "default.conf").write_text(conf)
    (conf_dir / "backend.inc").write_text("set $tengen_backend 127.0.0.1:9;\n")
    for path in conf_dir.iterdir():
        path.chmod(0o644)
    docker("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", TAG, str(REPO / "files" / "web"))
    name = f"tengen-svc-fairuse-{uuid.uuid4().hex[:8]}"
    try:
        docker("run", "-d", "--name", name, "-v", f"{conf_dir}:/etc/nginx/conf.d:ro", TAG)
        address = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
        wait_for_http(f"http://{address}:8080/healthz", timeout=30)
        yield f"http://{address}:8080"
    finally:
        docker("rm", "-f", "-v", name, check=False)
        docker("rmi", TAG, check=False)


def api_from(base: str, player: str) -> int:
    """A GET of the API as Caddy forwards it for `player` (this host is on a trusted network)."""
    req = urllib.request.Request(f"{base}/api/games/x", headers={"X-Forwarded-For": player})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_api_rate_limit_is_per_player_and_per_ipv6_64(nginx: str) -> None:
    assert api_from(nginx, "2001:db8:1:2::1") == 502  # admitted (no backend behind)
    # Other addresses of the same /64, written any way: the same player, then over its rate.
    assert api_from(nginx, "2001:db8:1:2:ffff:ffff:ffff:ffff") == 502
    assert api_from(nginx, "2001:DB8:1:2:0:0:0:5") == 429
    # The next /64 and IPv4 players have buckets of their own.
    assert api_from(nginx, "2001:db8:1:3::1") == 502
    assert api_from(nginx, "198.51.100.7") == 502
    assert api_from(nginx, "198.51.100.8") == 502
    assert api_from(nginx, "198.51.100.7") == 502
    assert api_from(nginx, "198.51.100.7") == 429
    # A player cannot choose its bucket: Caddy's own address (appended last) is the one believed.
    assert api_from(nginx, "203.0.113.50, 198.51.100.7") == 429
