"""The game_stack cross-field validation: each rule fires on bad input and names the variable."""

from __future__ import annotations

import pytest
from ansible_collections.tengen.ops.plugins.filter.game_stack import (
    game_stack_problems,
    parse_image_reference,
    parse_size,
)


def config(**overrides):
    base = {
        "environment": "production",
        "domain": "go.example.org",
        "acme_email": "ops@example.org",
        "images": {"game_stack_backend_image": "tengen/backend:3f2a9c1d0b4e"},
        "ports": {"game_stack_http_port": 80, "game_stack_https_port": 443},
        "engine_variant": "katago",
        "engine_memory_limit": "2g",
        "engine_memory_minimum": {"gnugo": "256m", "katago": "1g"},
    }
    base.update(overrides)
    return base


def test_sound_configuration_has_no_problem():
    assert game_stack_problems(config()) == []


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"domain": ""}, "game_stack_domain"),
        ({"domain": "not a host"}, "game_stack_domain"),
        ({"acme_email": ""}, "game_stack_acme_email"),
        ({"acme_email": "ops.example.org"}, "game_stack_acme_email"),
    ],
)
def test_production_needs_domain_and_email(overrides, variable):
    problems = game_stack_problems(config(**overrides))
    assert len(problems) == 1
    assert problems[0].startswith(variable + ":")


def test_sandbox_needs_neither_domain_nor_email():
    assert game_stack_problems(config(environment="sandbox", domain="", acme_email="")) == []


@pytest.mark.parametrize(
    "ref",
    [
        "tengen/backend:1.2.3",
        "registry.example.org:5000/team/tengen-backend:2026.11.23",
        "localhost/backend:a1",
        "tengen/backend@sha256:" + "a" * 64,
        "ghcr.io/org/img:v1@sha256:" + "0" * 64,
    ],
)
def test_valid_immutable_references_pass(ref):
    assert game_stack_problems(config(images={"game_stack_backend_image": ref})) == []


@pytest.mark.parametrize(
    ("ref", "why"),
    [
        ("Tengen/Backend:1", "not a valid image reference"),
        ("tengen/backend:", "not a valid image reference"),
        ("tengen backend:1", "not a valid image reference"),
        ("tengen/backend:1:2", "not a valid image reference"),
        ("tengen/backend@sha256:abc", "not a valid image reference"),
        ("tengen/backend", "no immutable tag"),
        ("tengen/backend:latest", "no immutable tag"),
    ],
)
def test_malformed_or_mutable_references_are_named(ref, why):
    problems = game_stack_problems(config(images={"game_stack_web_image": ref}))
    assert len(problems) == 1
    assert problems[0].startswith("game_stack_web_image:")
    assert why in problems[0]


def test_reference_parts():
    assert parse_image_reference("registry.example.org:5000/a/b:1") == {
        "domain": "registry.example.org:5000",
        "path": "a/b",
        "tag": "1",
        "digest": None,
    }
    assert parse_image_reference("tengen/backend:1")["domain"] is None
    assert parse_image_reference("tengen/backend:1")["path"] == "tengen/backend"


def test_colliding_ports_name_both_variables():
    problems = game_stack_problems(
        config(ports={"game_stack_http_port": 8443, "game_stack_https_port": 8443})
    )
    assert len(problems) == 1
    assert "game_stack_https_port and game_stack_http_port" in problems[0]


def test_port_out_of_range():
    problems = game_stack_problems(
        config(ports={"game_stack_http_port": 70000, "game_stack_https_port": 443})
    )
    assert problems == ["game_stack_http_port: 70000 is not a TCP port (1-65535)"]


@pytest.mark.parametrize(
    ("variant", "limit", "ok"),
    [("katago", "512m", False), ("katago", "1g", True), ("gnugo", "128m", False), ("gnugo", "256m", True)],
)
def test_engine_memory_minimum(variant, limit, ok):
    problems = game_stack_problems(config(engine_variant=variant, engine_memory_limit=limit))
    assert (problems == []) is ok
    if not ok:
        assert problems[0].startswith("game_stack_engine_memory_limit:")
        assert variant in problems[0]


def test_engine_memory_limit_that_is_not_a_size():
    problems = game_stack_problems(config(engine_memory_limit="lots"))
    assert problems == ["game_stack_engine_memory_limit: 'lots' is not a size (e.g. 512m, 2g)"]


@pytest.mark.parametrize(
    ("value", "size"),
    [("512m", 512 * 2**20), ("2g", 2 * 2**30), ("1.5GiB", int(1.5 * 2**30)), (1024, 1024), ("64k", 65536)],
)
def test_parse_size(value, size):
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["", "m", "-1g", True, None, "2 gigs"])
def test_parse_size_rejects(value):
    assert parse_size(value) is None


def test_every_problem_is_reported_at_once():
    problems = game_stack_problems(
        config(
            domain="",
            acme_email="",
            engine_memory_limit="100m",
            images={"game_stack_caddy_image": "x:latest"},
        )
    )
    assert [p.split(":")[0] for p in problems] == [
        "game_stack_domain",
        "game_stack_acme_email",
        "game_stack_caddy_image",
        "game_stack_engine_memory_limit",
    ]


SOUND_LIMITS = {
    "memory": {"game_stack_backend_memory_limit": "512m", "game_stack_caddy_memory_limit": "1g"},
    "tmpfs": {"game_stack_backend_tmpfs_size": "64m"},
    "pids": {"game_stack_backend_pids_limit": 256},
}


def test_sound_resource_limits_pass():
    assert game_stack_problems(config(limits=SOUND_LIMITS)) == []


@pytest.mark.parametrize(
    ("kind", "variable", "value"),
    [
        ("memory", "game_stack_backend_memory_limit", "lots"),
        ("memory", "game_stack_backend_memory_limit", "4m"),  # under Docker's minimum
        ("memory", "game_stack_nginx_memory_limit", 0),
        ("tmpfs", "game_stack_backend_tmpfs_size", "0"),
        ("tmpfs", "game_stack_engine_tmpfs_size", "big"),
        ("pids", "game_stack_backend_pids_limit", 0),  # 0 and -1 mean no limit to Docker
        ("pids", "game_stack_engine_pids_limit", -1),
        ("pids", "game_stack_caddy_pids_limit", "many"),
    ],
)
def test_each_bad_resource_limit_is_named(kind, variable, value):
    limits = {k: dict(v) for k, v in SOUND_LIMITS.items()}
    limits[kind][variable] = value
    problems = game_stack_problems(config(limits=limits))
    assert len(problems) == 1
    assert problems[0].startswith(variable + ":")


def test_sound_fair_use_limits_pass():
    fair_use = {
        "game_stack_ai_moves_per_player": 0,
        "game_stack_engine_slots": 1,
        "game_stack_ws_max_message": 64,
        "game_stack_trusted_proxies": ["10.0.0.0/8", "fc00::/7", "127.0.0.1"],
    }
    assert game_stack_problems(config(fair_use=fair_use)) == []


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("game_stack_ai_moves_per_player", -1),
        ("game_stack_websockets_per_player", "many"),
        ("game_stack_engine_slots", 0),
        ("game_stack_ws_max_message", 10),
        ("game_stack_finished_game_days", True),
        ("game_stack_trusted_proxies", ["10.0.0.0/8", "the office"]),
        ("game_stack_trusted_proxies", "10.0.0.0/8"),
    ],
)
def test_each_bad_fair_use_limit_is_named(variable, value):
    problems = game_stack_problems(config(fair_use={variable: value}))
    assert len(problems) == 1 and problems[0].startswith(f"{variable}: ")
