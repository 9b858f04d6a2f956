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
