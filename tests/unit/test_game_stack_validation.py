"""game_stack refuses bad input before any change, naming the variable (one run, one host per case)."""

from __future__ import annotations

import pytest

from tests.unit.test_playbooks import assert_refused, run_cases

CASES = {
    "production-without-domain": ({"game_stack_domain": ""}, "game_stack_domain"),
    "production-without-email": ({"game_stack_acme_email": ""}, "game_stack_acme_email"),
    "malformed-image": ({"game_stack_backend_image": "Tengen/Backend:1"}, "game_stack_backend_image"),
    "mutable-image": ({"game_stack_web_image": "tengen/web:latest"}, "game_stack_web_image"),
    "colliding-ports": ({"game_stack_https_port": 80}, "game_stack_https_port"),
    "engine-memory-too-low": ({"game_stack_engine_memory_limit": "512m"}, "game_stack_engine_memory_limit"),
    "engine-memory-no-size": ({"game_stack_engine_memory_limit": "lots"}, "game_stack_engine_memory_limit"),
    "unknown-delivery": ({"game_stack_image_delivery": "carrier-pigeon"}, "game_stack_image_delivery"),
    "pull-without-images": ({"game_stack_image_delivery": "pull"}, "game_stack_backend_image"),
    "unknown-environment": ({"game_stack_environment": "staging"}, "game_stack_environment"),
    "backend-memory-no-size": (
        {"game_stack_backend_memory_limit": "plenty"},
        "game_stack_backend_memory_limit",
    ),
    "nginx-pids-unlimited": ({"game_stack_nginx_pids_limit": 0}, "game_stack_nginx_pids_limit"),
    "engine-slots-none": ({"game_stack_engine_slots": 0}, "game_stack_engine_slots"),
    "caddy-tmpfs-empty": ({"game_stack_caddy_tmpfs_size": "0"}, "game_stack_caddy_tmpfs_size"),
    "env-bad-name": ({"game_stack_backend_env": {"BAD-NAME": "x"}}, "game_stack_backend_env"),
    "engine-vms-required-none-given": ({"game_stack_engine_on_vms": True}, "game_stack_engine_on_vms"),
    "engine-url-at-itself": (
        {
            "game_stack_engine_token": "0123456789abcdefXYZ",
            "game_stack_engine_remote_urls": ["http://engine-url-at-itself:8001"],
        },
        "game_stack_engine_remote_urls",
    ),
    "engine-vm-also-game-vm": (
        {
            "game_stack_engine_token": "0123456789abcdefXYZ",
            "game_stack_game_vm_hosts": ["engine-vm-also-game-vm"],
            "game_stack_engine_vm_hosts": ["engine-vm-also-game-vm"],
        },
        "game_stack_engine_vm_hosts",
    ),
    "engine-vm-without-secret": (
        {"game_stack_profile": "engine", "game_stack_engine_token": ""},
        "game_stack_engine_token",
    ),
    "secret-env-nul": (
        {"game_stack_backend_secret_env": {"API_KEY": "hunter\u0000two"}},
        "game_stack_backend_secret_env",
    ),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    tmp = tmp_path_factory.mktemp("game_stack")
    defaults = {
        "game_stack_domain": "go.example.org",
        "game_stack_acme_email": "ops@example.org",
        "game_stack_project_dir": str(tmp / "opt"),
        "game_stack_data_dir": str(tmp / "data"),
    }
    return run_cases(tmp, "game_stack", CASES, defaults)


@pytest.mark.parametrize("case", CASES)
def test_game_stack_refuses_bad_input(results: dict, case: str) -> None:
    assert_refused(results[case], CASES[case][1])


def test_a_refused_secret_stays_out_of_the_output(results: dict) -> None:
    assert "hunter" not in results["secret-env-nul"]["output"]


def test_refused_runs_created_nothing(results: dict) -> None:
    output = next(iter(results.values()))["output"]
    assert "directories | Create" not in output
    assert "packages | Install" not in output
