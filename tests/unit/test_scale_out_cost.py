"""The monthly cost estimate follows the configuration, item by item."""

from __future__ import annotations

import copy
import datetime
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
    assert cost.main([], today=datetime.date.fromisoformat(PRICES["valid_until"])) == 0
    out = capsys.readouterr().out
    assert "prices of 2026-11-01" in out
    assert out.splitlines()[-2].strip().startswith("total")


# A price file with round figures, so that every total below can be checked by hand.
ROUND_PRICES = {
    "date": "2026-11-01",
    "valid_until": "2027-02-01",
    "region": "eu-west-1",
    "hours_per_month": 700,
    "fargate": {"vcpu_hour": 0.04, "gb_hour": 0.005, "spot_factor": 0.5},
    "alb": {"hour": 0.02, "lcu_hour": 0.01, "lcus": 1},
    "nat_gateway": {"hour": 0.05},
    "rds_postgres": {"instance_hour": {"db.t4g.micro": 0.02}, "gp3_gb_month": 0.1},
    "elasticache_redis": {"node_hour": {"cache.t4g.micro": 0.02}},
    "secrets_manager": {"secret_month": 0.4},
    "route53": {"zone_month": 0.5},
    "cloudwatch_logs": {"gb_ingested": 0.5, "gb_per_month": 4},
    "vm_plans": {
        "lightsail": {
            "source": "Lightsail page",
            "date": "2026-11-01",
            "plans": {
                "medium_3_0": {"label": "Lightsail 4 GB", "month": 24},
                "large_3_0": {"label": "Lightsail 8 GB", "month": 44},
            },
        },
        "droplet": {
            "source": "Droplet page",
            "date": "2026-11-01",
            "plans": {"s-2vcpu-4gb": {"label": "Droplet Basic 4 GB", "month": 24}},
        },
    },
}
ROUND_CFG = {
    "scale_out_stack": "round",
    "scale_out_launch_type": "FARGATE",
    "scale_out_services": {
        "backend": {"cpu": 1024, "memory": 2048, "desired_count": 1},
        "engine": {"cpu": 1024, "memory": 2048, "desired_count": 1},
        "web": {"cpu": 256, "memory": 512, "desired_count": 1},
    },
    "scale_out_db_instance_class": "db.t4g.micro",
    "scale_out_db_storage_gb": 20,
    "scale_out_db_storage_type": "gp3",
    "scale_out_cache_node_type": "cache.t4g.micro",
    "scale_out_cache_nodes": 1,
}


def test_the_layouts_add_up_to_the_hand_computed_totals() -> None:
    # ECS, 700 hours a month, on-demand Fargate only:
    #   backend (1 vCPU x 0.04 + 2 GB x 0.005) x 700 = 0.05 x 700 = 35.00
    #   engine  the same                                              35.00
    #   web     (0.25 x 0.04 + 0.5 x 0.005) x 700 = 0.0125 x 700 =     8.75
    #   ALB (0.02 + 0.01 x 1 LCU) x 700 = 21.00; RDS 0.02 x 700 = 14.00; storage 20 GB x 0.1 = 2.00
    #   Redis 1 x 0.02 x 700 = 14.00; 2 secrets x 0.4 = 0.80; zone 0.50; logs 4 GB x 0.5 = 2.00
    #   total 35 + 35 + 8.75 + 21 + 14 + 2 + 14 + 0.8 + 0.5 + 2 = 133.05 a month
    # Lightsail 4 GB game VM (24) + 2 engine VMs of 8 GB (2 x 44 = 88) = 112 a month.
    rows = dict(cost.layouts(ROUND_CFG, ROUND_PRICES, ["medium_3_0"], "large_3_0", [2]))
    assert rows["ECS layout round (inventories/aws)"] == pytest.approx(133.05)
    assert rows["Lightsail 4 GB + 2 engine VMs Lightsail 8 GB (large_3_0)"] == pytest.approx(112)
    assert rows["Lightsail 8 GB (large_3_0)"] == 44
    assert rows["Droplet Basic 4 GB (s-2vcpu-4gb)"] == 24
    # Running totals: month 3 of the engine layout is 3 x 112 = 336, of ECS 3 x 133.05 = 399.15.
    lines = cost.table(list(rows.items()), 3)
    assert lines[0].split()[-2:] == ["month", "3"]
    engine_line = next(line for line in lines if line.startswith("Lightsail 4 GB + 2"))
    assert engine_line.split()[-4:] == ["112.00", "112.00", "224.00", "336.00"]
    assert next(line for line in lines if line.startswith("ECS")).split()[-1] == "399.15"


def test_engine_vms_stay_with_the_game_vm_provider() -> None:
    with pytest.raises(SystemExit, match="engine plan s-2vcpu-4gb .droplet. is not a lightsail plan"):
        cost.layouts(ROUND_CFG, ROUND_PRICES, ["medium_3_0"], "s-2vcpu-4gb", [1])
    with pytest.raises(SystemExit, match="no VM plan 'huge'"):
        cost.layouts(ROUND_CFG, ROUND_PRICES, ["huge"], None, [1])


def test_prices_past_their_validity_are_refused(tmp_path: Path) -> None:
    stale = tmp_path / "prices.yml"
    stale.write_text(yaml.safe_dump({**PRICES, "valid_until": "2026-12-01"}))
    with pytest.raises(SystemExit, match=r"valid until 2026-12-01, and today is 2026-12-02\. Review them"):
        cost.main(["--prices", str(stale), "--table"], today=datetime.date(2026, 12, 2))
    # The last valid day still prints.
    assert cost.main(["--prices", str(stale)], today=datetime.date(2026, 12, 1)) == 0
    stale.write_text(yaml.safe_dump({k: v for k, v in PRICES.items() if k != "valid_until"}))
    with pytest.raises(SystemExit, match="no valid_until date"):
        cost.main(["--prices", str(stale)], today=datetime.date(2026, 12, 1))


def test_the_table_prints_every_layout_by_month(capsys: pytest.CaptureFixture[str]) -> None:
    today = datetime.date.fromisoformat(PRICES["valid_until"])
    assert cost.main(["--table", "--months", "2", "--engine-vms", "1"], today=today) == 0
    out = capsys.readouterr().out
    assert "aws.amazon.com/lightsail/pricing): prices of 2026-11-01" in out
    line = next(line for line in out.splitlines() if "Lightsail 4 GB + 1 engine VM" in line)
    assert line.split()[-3:] == ["48.00", "48.00", "96.00"]
    assert out.rstrip().splitlines()[-1].split()[:3] == ["ECS", "layout", CFG["scale_out_stack"]]


@pytest.mark.parametrize("provider", ["lightsail", "droplet"])
def test_vm_prices_match_the_provisioning_catalogue(provider: str) -> None:
    catalogue = yaml.safe_load((REPO / f"roles/provision_{provider}/vars/main.yml").read_text())
    listed = next(v for k, v in catalogue.items() if k.endswith(("_bundles", "_sizes")))
    for name, plan in PRICES["vm_plans"][provider]["plans"].items():
        assert (plan["month"], plan["vcpu"], plan["memory_gb"], plan["disk_gb"]) == (
            listed[name]["price_usd"],
            listed[name]["vcpu"],
            listed[name]["ram_gb"],
            listed[name]["disk_gb"],
        ), name


def test_the_shipped_prices_are_still_valid() -> None:
    # Fails on purpose once valid_until has passed: review data/aws-prices.yml, then move it on.
    cost.check_valid(PRICES, "data/aws-prices.yml", datetime.datetime.now(datetime.UTC).date())


ROUND_GPU = {
    "source": "EC2 page",
    "date": "2026-11-01",
    "on_demand_hour": {"g4dn.xlarge": 0.5},
    "spot": {"source": "Spot history", "date": "2026-11-02", "hour": {"g4dn.xlarge": 0.2}},
}


def test_gpu_hosts_add_up_to_the_hand_computed_totals() -> None:
    # Engine on 3 GPU hosts, 1 always on demand, 50 % on demand above it: 2 above the base,
    # 1 of them on demand (EC2 Auto Scaling rounds the on-demand share up), so 2 on demand, 1 Spot.
    #   on demand 2 x 0.5 x 700 = 700.00; Spot 1 x 0.2 x 700 = 140.00
    # The rest as in the Fargate case above without the engine's 35.00: 133.05 - 35 = 98.05.
    prices = {**ROUND_PRICES, "gpu_instances": ROUND_GPU}
    services = copy.deepcopy(ROUND_CFG["scale_out_services"])
    services["engine"]["desired_count"] = 3
    cfg = {
        **ROUND_CFG,
        "scale_out_services": services,
        "scale_out_engine_capacity": "gpu",
        "scale_out_gpu_instance_types": ["g4dn.xlarge"],
        "scale_out_gpu_on_demand_base": 1,
        "scale_out_gpu_on_demand_percent": 50,
    }
    items = dict(cost.estimate(cfg, prices))
    assert items["GPU engine hosts: 2 x g4dn.xlarge on demand"] == pytest.approx(700)
    assert items[
        "GPU engine hosts: 1 x g4dn.xlarge Spot (a dated Spot figure of 2026-11-02)"
    ] == pytest.approx(140)
    assert not [label for label in items if label.startswith("Fargate engine")]
    assert sum(items.values()) == pytest.approx(98.05 + 840)
    # The table adds the inventory's layout with 1 GPU host (its desired count): all on
    # demand 98.05 + 350 = 448.05, all Spot 98.05 + 140 = 238.05; the inventory's row stays last.
    rows = cost.layouts(ROUND_CFG, prices, ["medium_3_0"], None, [1])
    by_label = dict(rows)
    assert by_label["ECS layout, engine on 1 x g4dn.xlarge GPU (on demand)"] == pytest.approx(448.05)
    assert by_label["ECS layout, engine on 1 x g4dn.xlarge GPU (Spot of 2026-11-02)"] == pytest.approx(238.05)
    assert rows[-1][0] == "ECS layout round (inventories/aws)"


@pytest.mark.parametrize(
    ("hosts", "base", "percent", "split"),
    [
        (1, 0, 0, (0, 1)),
        (1, 1, 0, (1, 0)),
        (3, 1, 50, (2, 1)),
        (4, 0, 25, (1, 3)),
        (5, 2, 34, (4, 1)),
        (2, 5, 0, (2, 0)),
    ],
)
def test_on_demand_and_spot_hosts_split_as_auto_scaling_does(hosts, base, percent, split) -> None:
    assert cost.gpu_split(hosts, base, percent) == split


def test_a_gpu_type_without_a_price_names_the_variable() -> None:
    cfg = {**CFG, "scale_out_engine_capacity": "gpu", "scale_out_gpu_instance_types": ["p5.48xlarge"]}
    with pytest.raises(SystemExit, match="scale_out_gpu_instance_types: no price for p5.48xlarge"):
        cost.estimate(cfg, PRICES)


def test_the_shipped_gpu_prices_cover_every_gpu_type() -> None:
    gpu = PRICES["gpu_instances"]
    assert set(gpu["specs"]) == set(gpu["on_demand_hour"]) == set(gpu["spot"]["hour"])
    assert all(gpu["spot"]["hour"][t] < gpu["on_demand_hour"][t] for t in gpu["specs"])
