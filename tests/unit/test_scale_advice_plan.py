"""playbooks/scale-out/plan.yml with figures from a file: the advice and the cost, no VM needed.

Each case is one inventory host with its own variables, so one ansible-playbook run covers them
all. The hosts point at a closed loopback port: a task that tried to reach the VM would fail; the
one host without a figures file shows how plan.yml names a VM that cannot be reached.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, free_port
from tests.unit.test_playbooks import ansible_playbook

WEEK = yaml.safe_load((REPO / "tests/unit/data/scale-advice/quiet-week.yml").read_text())["samples"]


def figures(path: Path, **values: float) -> str:
    samples = copy.deepcopy(WEEK)
    for s in samples:
        s.update(values)
    path.write_text(yaml.safe_dump({"samples": samples}))
    return str(path)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("plan")
    empty = tmp / "empty.yml"
    empty.write_text("samples: []\n")
    no_samples = tmp / "no-samples.yml"
    no_samples.write_text("players: 3\n")
    prices = yaml.safe_load((REPO / "data/aws-prices.yml").read_text())
    stale = tmp / "stale-prices.yml"
    stale.write_text(yaml.safe_dump({**prices, "date": "2025-01-01", "valid_until": "2025-03-01"}))
    hosts = {
        "engine-wall": {"scale_advice_figures_file": figures(tmp / "engine.yml", engine_queue_wait_p95=3.0)},
        "quiet": {"scale_advice_figures_file": figures(tmp / "quiet.yml")},
        "largest-plan": {
            # 4 cores with 25 % headroom: 3 cores; backend 0.15 + engine 3.0 is over.
            "scale_advice_figures_file": figures(tmp / "cpu.yml", engine_cpu=3.0),
            "scale_advice_provider": "droplet",
            "scale_advice_plan": "s-4vcpu-8gb",
        },
        # The same VM as provision_droplet writes it into its inventory.
        "provisioned-droplet": {
            "scale_advice_figures_file": str(tmp / "cpu.yml"),
            "tengen_vm_provider": "digitalocean",
            "tengen_vm_plan": "s-4vcpu-8gb",
        },
        "empty-window": {"scale_advice_figures_file": str(empty)},
        "no-samples": {"scale_advice_figures_file": str(no_samples)},
        "unknown-plan": {"scale_advice_figures_file": str(tmp / "quiet.yml"), "scale_advice_plan": "huge"},
        "stale-prices": {
            "scale_advice_figures_file": str(tmp / "quiet.yml"),
            "scale_advice_prices_file": str(stale),
        },
        "unreachable": {},  # no file: the figures would be read on the VM
        "contradiction": {
            "scale_advice_figures_file": str(tmp / "quiet.yml"),
            "scale_advice_engine_queue_wait_p95_s": 6.0,
        },
    }
    port = free_port()  # nothing listens there
    inventory = {
        "vm": {
            "hosts": {
                name: {**v, "ansible_host": "127.0.0.1", "ansible_port": port} for name, v in hosts.items()
            }
        }
    }
    (tmp / "hosts.yml").write_text(yaml.safe_dump(inventory))
    proc = ansible_playbook("-i", str(tmp / "hosts.yml"), "playbooks/scale-out/plan.yml")
    out = proc.stdout + proc.stderr
    assert "UNREACHABLE" not in out.replace("fatal: [unreachable]: UNREACHABLE!", ""), out
    # The recap line of each host: ok/failed counts.
    recap = dict(re.findall(r"^(\S+)\s+: (ok=\d+ +changed=\d+ +unreachable=\d+ +failed=\d+)", out, re.M))
    return {"out": out, **{f"recap:{k}": v for k, v in recap.items()}}


def host_output(out: str, host: str) -> str:
    """The lines the play printed for one host (its task results and messages)."""
    blocks = re.split(r"\n(?=ok: |fatal: |changed: |skipping: )", out)
    text = "\n".join(b for b in blocks if b.startswith(("ok: [" + host, "fatal: [" + host)))
    return re.sub(r"\n\s+", " ", text)  # long lines come wrapped by the YAML output


def test_the_advice_names_the_engine_queue_and_prints_the_cost(run: dict) -> None:
    text = host_output(run["out"], "engine-wall")
    assert "Decision: engine_vm: an engine VM beside the game VM (medium_3_0)" in text
    assert "engine_queue_wait_p95 3 s > 2 (engine_queue_wait_p95_s) -> engine_vm" in text
    assert "Lightsail 4 GB + 1 engine VM Lightsail 4 GB (medium_3_0)" in text
    assert "ECS layout tengen-staging (inventories/aws)" in text
    assert "changed=0" in run["recap:engine-wall"] and "failed=0" in run["recap:engine-wall"]


def test_a_quiet_week_stays(run: dict) -> None:
    assert "Decision: stay: the current VM (medium_3_0)" in host_output(run["out"], "quiet")


@pytest.mark.parametrize("host", ["largest-plan", "provisioned-droplet"])
def test_the_largest_plan_of_the_provider_leads_to_ecs(run: dict, host: str) -> None:
    text = host_output(run["out"], host)
    assert "Decision: ecs" in text and "plan s-4vcpu-8gb is the largest plan listed" in text
    assert "Droplet Basic 8 GB + 1 engine VM Droplet Basic 8 GB (s-4vcpu-8gb)" in text


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("empty-window", "Cannot advise: figures: the window is empty"),
        ("no-samples", "has no list under `samples:`"),
        ("unknown-plan", "the lightsail plans in"),
        ("contradiction", "move_round_trip_p95_s (5) must be above engine_queue_wait_p95_s (6)"),
        ("stale-prices", "the prices of 2025-01-01 were valid until 2025-03-01, and today is"),
        ("unreachable", "Cannot reach unreachable (127.0.0.1, port"),
    ],
)
def test_bad_input_fails_with_its_reason(run: dict, host: str, message: str) -> None:
    assert "failed=1" in run[f"recap:{host}"]
    assert message in host_output(run["out"], host)
