"""The monthly cost estimate follows the configuration, item by item."""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
_loader = importlib.machinery.SourceFileLoader("scale_out_cost", str(REPO / "scripts" / "scale-out-cost"))
_spec = importlib.util.spec_from_loader("scale_out_cost", _loader)
cost = importlib.util.module_from_spec(_spec)
_loader.exec_module(cost)

CFG = yaml.safe_load((REPO / "inventories/aws/group_vars/all/scale_out.yml").read_text())
PRICES = yaml.safe_load((REPO / "data/aws-prices.yml").read_text())


def total(cfg: dict) -> float:
    return sum(c for _, c in cost.estimate(cfg, PRICES))


def test_every_billed_part_is_an_item() -> None:
    labels = [label for label, _ in cost.estimate(CFG, PRICES)]
    assert [label.split(":")[0] for label in labels[:3]] == [
        "Fargate backend",
        "Fargate engine",
        "Fargate web",
    ]
    assert any(label.startswith("Application Load Balancer") for label in labels)
    assert any(label.startswith("RDS PostgreSQL db.t4g.micro") for label in labels)
    assert any(label.startswith("ElastiCache Redis 1 x cache.t4g.micro") for label in labels)
    assert not any("NAT" in label for label in labels)


def test_nat_gateway_adds_its_hours() -> None:
    cfg = {**CFG, "scale_out_nat_gateway": True}
    assert total(cfg) - total(CFG) == pytest.approx(0.048 * 730)


def test_more_tasks_cost_more_and_spot_costs_less() -> None:
    bigger = copy.deepcopy(CFG)
    bigger["scale_out_services"]["backend"]["desired_count"] = 4
    assert total(bigger) > total(CFG)
    on_demand = {**CFG, "scale_out_launch_type": "FARGATE"}
    assert total(on_demand) > total(CFG)


def test_a_size_without_a_price_names_the_variable() -> None:
    with pytest.raises(SystemExit, match="scale_out_db_instance_class"):
        cost.estimate({**CFG, "scale_out_db_instance_class": "db.x9.huge"}, PRICES)


def test_the_command_prints_a_total(capsys: pytest.CaptureFixture[str]) -> None:
    assert cost.main([]) == 0
    out = capsys.readouterr().out
    assert "prices of 2026-11-01" in out
    assert out.splitlines()[-2].strip().startswith("total")
