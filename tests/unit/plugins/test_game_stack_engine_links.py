"""The game_stack checks that tie a backend to engine VMs: profile, token and engine URLs."""

from __future__ import annotations

import pytest
from ansible_collections.tengen.ops.plugins.filter.game_stack import game_stack_problems

TOKEN = "0123456789abcdefXYZ"


def config(**overrides):
    base = {
        "environment": "production",
        "domain": "go.example.org",
        "acme_email": "ops@example.org",
        "profile": "full",
        "images": {"backend": "tengen/backend:3f2a9c1d0b4e", "engine": "tengen/engine:77aa"},
        "ports": {"game_stack_http_port": 80, "game_stack_https_port": 443},
        "engine_variant": "katago",
        "engine_memory_limit": "2g",
        "engine_memory_minimum": {"gnugo": "256m", "katago": "1g"},
        "engine_token": "",
        "engine_remote_urls": [],
    }
    base.update(overrides)
    return base


def test_a_full_stack_without_engine_vms_needs_no_token():
    assert game_stack_problems(config()) == []


def test_an_engine_vm_needs_neither_domain_nor_email_but_a_token():
    engine = config(profile="engine", domain="", acme_email="", images={"engine": "tengen/engine:77aa"})
    assert game_stack_problems({**engine, "engine_token": TOKEN}) == []
    problems = game_stack_problems(engine)
    assert len(problems) == 1 and problems[0].startswith("game_stack_engine_token:")


def test_a_short_token_is_refused():
    problems = game_stack_problems(config(engine_token="short"))
    assert problems == ["game_stack_engine_token: 16 characters or more (the gateway refuses less)"]


@pytest.mark.parametrize(
    "url", ["10.0.0.5:8001", "http://10.0.0.5", "ftp://10.0.0.5:8001", "http://a b:8001", 8001]
)
def test_engine_urls_must_be_http_host_port(url):
    problems = game_stack_problems(
        config(engine_token=TOKEN, engine_remote_urls=["http://10.0.0.6:8001", url])
    )
    assert len(problems) == 1 and problems[0].startswith("game_stack_engine_remote_urls:")


def test_engine_vms_without_a_token_are_refused():
    problems = game_stack_problems(config(engine_remote_urls=["http://10.0.0.6:8001"]))
    assert problems == ["game_stack_engine_remote_urls: engine VMs need game_stack_engine_token"]


def test_image_names_are_reported_as_their_variables():
    problems = game_stack_problems(config(images={"engine": "tengen/engine:latest"}))
    assert len(problems) == 1 and problems[0].startswith("game_stack_engine_image:")


def test_an_engine_vm_that_is_also_the_game_vm_is_refused():
    for profile in ("full", "engine"):
        problems = game_stack_problems(
            config(
                profile=profile,
                engine_token=TOKEN,
                host="vm-1",
                game_vm_hosts=["vm-1"],
                engine_vm_hosts=["vm-1", "engine-1"],
            )
        )
        assert [p.split(":")[0] for p in problems] == ["game_stack_engine_vm_hosts"], problems
        assert "vm-1 is also a game VM" in problems[0]
    separate = config(engine_token=TOKEN, host="vm-1", game_vm_hosts=["vm-1"], engine_vm_hosts=["engine-1"])
    assert game_stack_problems(separate) == []


def test_an_engine_url_at_the_game_vm_itself_is_refused():
    problems = game_stack_problems(
        config(
            engine_token=TOKEN,
            host="vm-1",
            host_addresses=["vm-1", "203.0.113.10", "10.114.0.2"],
            engine_remote_urls=["http://10.114.0.3:8001", "http://10.114.0.2:8001"],
        )
    )
    assert problems == [
        "game_stack_engine_remote_urls: http://10.114.0.2:8001 is this game VM itself (vm-1); "
        "an engine VM must be a machine of its own"
    ]


def test_engine_vms_required_with_an_empty_engines_group_are_refused():
    problems = game_stack_problems(config(engine_on_vms=True, engine_remote_urls=[]))
    assert len(problems) == 1 and problems[0].startswith("game_stack_engine_on_vms:")
    assert "engines group has no hosts" in problems[0]
    assert (
        game_stack_problems(
            config(engine_on_vms=True, engine_token=TOKEN, engine_remote_urls=["http://10.0.0.6:8001"])
        )
        == []
    )
    # An engine VM itself is not told to use engine VMs: the rule is the game VM's.
    engine = config(profile="engine", engine_token=TOKEN, engine_on_vms=True, domain="", acme_email="")
    assert game_stack_problems(engine) == []


def test_a_missing_secret_is_named_on_both_sides():
    engine = game_stack_problems(config(profile="engine", domain="", acme_email=""))
    game = game_stack_problems(config(engine_remote_urls=["http://10.0.0.6:8001"]))
    assert [p.split(":")[0] for p in engine + game] == [
        "game_stack_engine_token",
        "game_stack_engine_remote_urls",
    ]
