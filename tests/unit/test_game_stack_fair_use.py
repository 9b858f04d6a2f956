"""game_stack's fair-use settings: nginx keys its limits on the player (IPv6 by /64) and the
backend gets its limits in its environment."""

from __future__ import annotations

import ipaddress
import json
import random
import re
import sys

import pytest

from tests.conftest import REPO
from tests.module_runner import template

ROLE = REPO / "roles" / "game_stack"
sys.path.insert(0, str(REPO / "files" / "app"))
from tengen_app.fairness import player_key  # noqa: E402


def render(**variables: object) -> str:
    return template(
        f"{{{{ lookup('ansible.builtin.template', '{ROLE / 'templates' / 'nginx.conf.j2'}') }}}}",
        "-e",
        f"@{ROLE / 'defaults' / 'main.yml'}",
        "-e",
        json.dumps(variables),
    )


@pytest.fixture(scope="module")
def nginx_conf() -> str:
    return render()


def client_map(conf: str):
    """nginx's `map $remote_addr $tengen_client` as a function: first matching regex wins."""
    block = re.search(r"map \$remote_addr \$tengen_client \{\n(.*?)\n\}", conf, re.S)
    assert block, conf
    rules = []
    for line in block.group(1).splitlines():
        found = re.fullmatch(r'\s*"~\*(.+)" "(.+)";', line)
        if found:
            rules.append((re.compile(found.group(1), re.I), re.sub(r"\$(\d)", r"\\g<\1>", found.group(2))))
        else:
            assert line.strip() == "default $remote_addr;", line

    def key(address: str) -> str:
        for regex, value in rules:
            if match := regex.search(address):
                return match.expand(value)
        return address

    return key


def spellings(ip: ipaddress.IPv6Address) -> set[str]:
    """Every way to write the address, "::" standing for any one run of zeros (nginx prints
    $remote_addr in lower case, and is not bound to compress the longest run only)."""
    groups = [f"{int(g, 16):x}" for g in ip.exploded.split(":")]
    found = {":".join(groups), str(ip)}
    for start in range(8):
        for end in range(start + 1, 9):
            if all(g == "0" for g in groups[start:end]):
                found.add(":".join(groups[:start]) + "::" + ":".join(groups[end:]))
    return found


def prefix(ip: ipaddress.IPv6Address) -> str:
    return ":".join(f"{int(g, 16):x}" for g in ip.exploded.split(":")[:4]) + "/64"


def test_nginx_keys_ipv6_players_on_their_64(nginx_conf: str) -> None:
    key = client_map(nginx_conf)
    rng = random.Random(64)
    addresses = [ipaddress.IPv6Address(a) for a in ("::", "::1", "2001:db8::", "2001:db8:0:5::1")]
    for _ in range(400):  # many zero groups, so that "::" falls everywhere
        addresses.append(
            ipaddress.IPv6Address(
                ":".join(rng.choice(["0", "0", "0", f"{rng.randrange(1, 0x10000):x}"]) for _ in range(8))
            )
        )
    for ip in addresses:
        for text in spellings(ip):
            assert key(text) == prefix(ip), text
    # Two addresses of one /64 share a bucket, in nginx as in the backend; the next /64 does not.
    one, same, other = "2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::1"
    assert key(one) == key(same) != key(other)
    assert player_key(one) == player_key(same) != player_key(other)
    # IPv4 players keep their address.
    assert key("198.51.100.7") == "198.51.100.7" and key("::ffff:198.51.100.7") == "198.51.100.7"


def test_nginx_limits_are_keyed_on_the_player_from_caddy(nginx_conf: str) -> None:
    assert "limit_req_zone $tengen_client zone=tengen_api" in nginx_conf
    assert "$binary_remote_addr" not in nginx_conf
    # The player's address is Caddy's X-Forwarded-For, believed from the Docker networks only.
    assert "real_ip_header X-Forwarded-For;" in nginx_conf
    assert "set_real_ip_from 172.16.0.0/12;" in nginx_conf
    assert "set_real_ip_from 0.0.0.0/0" not in nginx_conf
    ws = nginx_conf[nginx_conf.index("location /ws/") :]
    assert "limit_conn tengen_ws 200;" in ws[: ws.index("}")]
    assert "limit_conn_zone $tengen_client zone=tengen_ws:10m;" in nginx_conf


def test_no_websocket_limit_renders_none() -> None:
    conf = render(game_stack_websockets_per_player=0)
    assert "limit_conn" not in conf


def test_the_backend_gets_the_limits_in_its_environment() -> None:
    env = template(
        "{{ __game_stack_backend_environment }}",
        "-e",
        f"@{ROLE / 'defaults' / 'main.yml'}",
        "-e",
        f"@{ROLE / 'vars' / 'main.yml'}",
        "-e",
        json.dumps({"game_stack_ai_moves_per_player": 2, "game_stack_abandoned_game_days": 7}),
    )
    assert env["TENGEN_AI_MOVES_PER_PLAYER"] == "2"
    assert env["TENGEN_ABANDONED_GAME_DAYS"] == "7"
    assert env["TENGEN_FINISHED_GAME_DAYS"] == "90"
    assert env["TENGEN_WEBSOCKETS_PER_PLAYER"] == "200"
    assert env["TENGEN_WS_MAX_MESSAGE"] == "4096"
    assert env["TENGEN_ENGINE_SLOTS"] == "4"
    with_vms = template(
        "{{ __game_stack_backend_environment.TENGEN_ENGINE_SLOTS }}",
        "-e",
        f"@{ROLE / 'defaults' / 'main.yml'}",
        "-e",
        f"@{ROLE / 'vars' / 'main.yml'}",
        "-e",
        json.dumps({"game_stack_engine_remote_urls": ["http://10.0.0.5:8001", "http://10.0.0.6:8001"]}),
    )
    assert with_vms == "12"  # four for the game VM's own engine and for each engine VM
    assert env["TENGEN_TRUSTED_PROXIES"].split(",")[:2] == ["127.0.0.0/8", "::1/128"]
