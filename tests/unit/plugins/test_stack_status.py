"""The status at a glance: facts read from inputs recorded on the sandbox VM (docker compose ps,
Caddy's certificate, sqlite_backup's status and manifest, the release ledger) and the lines made
from them, each problem on its own line."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest
from ansible_collections.tengen.ops.plugins.module_utils.stack_status import (
    certificate_validity,
    collect_backups,
    collect_certificate,
    collect_disks,
    parse_compose_ps,
    render,
    services,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.module_runner import template

DATA = Path(__file__).resolve().parents[1] / "data" / "status"
NOW = 1796664500  # 2026-12-07T17:28:20Z, a minute after the recorded backup
LIMITS = {
    "backup_max_age_hours": 2,
    "disk_max_used_percent": 90,
    "tls_min_remaining_share": 0.2,
    "offsite_expected": False,
}
ADVICE = {
    "decision": "stay",
    "target": "the current VM (medium_3_0)",
    "window": {"samples": 1, "days": 0},
    "causes": [],
    "headroom": [
        {"figure": "vm_memory_mb", "value": 84.73, "limit": 3276.8, "unit": "MB", "headroom_percent": 97.4}
    ],
    "notices": [],
}


def recorded_ps(name: str = "compose-ps.jsonl") -> list[dict]:
    expected = (DATA / "compose-services.txt").read_text().split()
    return services(expected, parse_compose_ps((DATA / name).read_text()))


def caddy_dir(tmp_path: Path) -> Path:
    site = tmp_path / "caddy" / "data" / "caddy" / "certificates" / "local" / "localhost"
    site.mkdir(parents=True)
    shutil.copy(DATA / "localhost.crt", site / "localhost.crt")
    return tmp_path / "caddy"


def backup_dir(tmp_path: Path) -> Path:
    backups = tmp_path / "backups"
    backups.mkdir()
    manifest = json.loads((DATA / "backup-manifest.json").read_text())
    (backups / f"{manifest['name']}.json").write_text(json.dumps(manifest))
    (backups / manifest["file"]).write_bytes(b"\0" * manifest["file_size"])
    shutil.copy(DATA / "backup-status.json", backups / "status.json")  # not taken for a manifest
    return backups


@pytest.fixture
def facts(tmp_path: Path) -> dict:
    backups = backup_dir(tmp_path)
    return {
        "host": "tengen-e2e-status",
        "now": NOW,
        "services": recorded_ps(),
        "releases": json.loads((DATA / "releases.json").read_text()),
        "certificate": collect_certificate(str(caddy_dir(tmp_path)), "localhost"),
        "backups": collect_backups(str(backups), str(backups / "status.json")),
        "disks": [
            {
                "path": "/var/lib/tengen",
                "also": ["/"],
                "total_bytes": 270.6e9,
                "free_bytes": 75.1e9,
                "used_percent": 32,
            }
        ],
        "maintenance": None,
        "audit": [],
    }


def problems(facts: dict, limits: dict | None = None, scale: dict | None = None) -> list[str]:
    return render(facts, {**LIMITS, **(limits or {})}, scale)["problems"]


def test_the_healthy_sandbox_has_no_problem(facts: dict) -> None:
    report = render(facts, LIMITS, ADVICE)
    lines = report["lines"]
    assert report["problems"] == [] and lines[-1] == "OK: no problems"
    for service in ("engine", "backend-blue", "nginx", "caddy"):
        assert any(line.startswith(f"service {service}: running, healthy") for line in lines), lines
    assert "release live: afc3e6bbbf4d (backend slot blue): backend=tengen/backend:e23ed5dd7d48" in "\n".join(
        lines
    )
    assert "release kept: none (no rollback possible)" in lines
    assert "tls localhost: certificate valid until 2026-12-08T05:24Z, 11h left of 12h (local)" in lines
    assert "backup: newest is 1m old (limit 2h), 1 local, newest tengen-20261207T172712Z" in lines
    assert "offsite: none configured" in lines
    assert "disk /var/lib/tengen (also /): 32% used, 75.1 GB free of 270.6 GB (limit 90%)" in lines
    assert "maintenance: off" in lines and "audit: no entries yet" in lines
    assert "scale advice: stay: the current VM (medium_3_0) (from 1 samples over 0 days)" in lines


def test_a_stopped_engine_is_named(facts: dict) -> None:
    facts["services"] = recorded_ps("compose-ps-engine-stopped.jsonl")
    assert problems(facts) == ["PROBLEM engine: container stopped (exit code 0)"]


def test_missing_and_unhealthy_containers_are_named(facts: dict) -> None:
    facts["services"] = [s for s in facts["services"] if s["service"] != "caddy"]
    facts["services"] = services(["engine", "backend-blue", "nginx", "caddy"], facts["services"])
    facts["services"][1]["health"] = "unhealthy"
    assert problems(facts) == ["PROBLEM backend-blue: container unhealthy", "PROBLEM caddy: no container"]


def test_an_old_backup_is_named_with_its_age_and_limit(facts: dict) -> None:
    facts["backups"]["status"]["last_success_epoch"] -= 3 * 86400
    assert problems(facts, {"backup_max_age_hours": 24}) == ["PROBLEM backup: newest is 3d old (limit 1d)"]


def test_a_failed_backup_and_missing_uploads_are_named(facts: dict) -> None:
    status = facts["backups"]["status"]
    status.update({"last_result": "failed", "error": "not enough free space"})
    found = problems(facts, {"offsite_expected": True})
    assert found == [
        "PROBLEM backup: the last attempt (2026-12-07T17:27:12Z) failed: not enough free space",
        "PROBLEM offsite: a bucket is configured but no backup was uploaded",
    ]
    status.update(
        {"last_result": "ok", "last_upload_success_epoch": NOW - 5 * 3600, "s3_uri": "s3://b/tengen.db"}
    )
    assert problems(facts, {"offsite_expected": True}) == [
        "PROBLEM offsite: the last upload is 5h old (limit 2h)"
    ]


def test_no_backup_status_is_a_problem(tmp_path: Path, facts: dict) -> None:
    facts["backups"] = collect_backups(str(tmp_path), str(tmp_path / "status.json"))
    assert problems(facts) == ["PROBLEM backup: no backup has run (no status file)"]


def test_a_full_disk_is_named(facts: dict) -> None:
    facts["disks"][0]["used_percent"] = 96
    assert problems(facts) == ["PROBLEM disk: 96% used on /var/lib/tengen (limit 90%)"]
    assert problems(facts, {"disk_max_used_percent": 97}) == []


def test_a_certificate_past_its_renewal_or_expired_is_named(facts: dict) -> None:
    not_after = facts["certificate"]["not_after"]
    facts["now"] = not_after - 3600  # 1h of 12h left: Caddy should have renewed at 4h
    assert problems(facts, {"backup_max_age_hours": 100}) == [
        "PROBLEM tls: the certificate of localhost has 1h left, under 0.2 of its 12h "
        "(Caddy renews at 1/3 left: is renewal failing?)"
    ]
    facts["now"] = not_after + 120
    assert problems(facts, {"backup_max_age_hours": 100}) == [
        "PROBLEM tls: the certificate of localhost expired 2m ago"
    ]


def test_no_certificate_and_no_release_are_named(tmp_path: Path, facts: dict) -> None:
    facts["certificate"] = collect_certificate(str(tmp_path), "play.example.org")
    facts["releases"] = None
    found = problems(facts)
    assert found[0] == "PROBLEM release: no release ledger on the VM"
    assert found[1].startswith("PROBLEM tls: no certificate under ") and "play.example.org.crt" in found[1]


def test_kept_releases_and_audit_entries_are_shown(facts: dict) -> None:
    facts["releases"]["releases"] += [{"id": "0123456789ab"}, {"id": "ba9876543210"}]
    facts["audit"] = [
        {
            "time": "2026-12-07T17:30:00Z",
            "controller_user": "alice",
            "controller": "laptop",
            "ansible_user": "deploy",
            "action": "release",
            "outcome": "rolled back",
            "release": "afc3e6bbbf4d",
            "detail": "health gate failed",
        }
    ]
    facts["maintenance"] = {"reason": "moving", "retry_after": 900}
    lines = render(facts, LIMITS)["lines"]
    assert "release kept: 0123456789ab, ba9876543210 (a rollback goes to 0123456789ab)" in lines
    assert (
        "audit 2026-12-07T17:30:00Z alice@laptop as deploy: "
        "release rolled back release afc3e6bbbf4d: health gate failed" in lines
    )
    assert "maintenance: on (moving; writes refused)" in lines


def test_each_problem_is_counted_on_the_last_line(facts: dict) -> None:
    facts["services"] = recorded_ps("compose-ps-engine-stopped.jsonl")
    facts["disks"][0]["used_percent"] = 96
    lines = render(facts, LIMITS)["lines"]
    assert lines[-1] == "2 problems"


def test_the_recorded_certificate_reads_as_openssl_reads_it() -> None:
    # openssl x509 -noout -dates: notBefore=Dec  7 17:24:45 2026 GMT, notAfter=Dec  8 05:24:45 2026 GMT
    not_before, not_after = certificate_validity((DATA / "localhost.crt").read_text())
    assert not_before == dt.datetime(2026, 12, 7, 17, 24, 45, tzinfo=dt.UTC)
    assert not_after == dt.datetime(2026, 12, 8, 5, 24, 45, tzinfo=dt.UTC)


@pytest.mark.parametrize("years", [1, 40])  # UTCTime until 2049, GeneralizedTime from 2050
def test_certificate_dates_in_both_encodings(years: int) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "play.example.org")])
    start = dt.datetime(2026, 12, 1, 8, 0, 0, tzinfo=dt.UTC)
    end = start.replace(year=2026 + years)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .sign(key, hashes.SHA256())
    )
    assert certificate_validity(cert.public_bytes(Encoding.PEM).decode()) == (start, end)


def test_disks_are_measured_once_a_filesystem(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    found = collect_disks([str(tmp_path), str(tmp_path / "a"), str(tmp_path / "gone")])
    assert [d["path"] for d in found] == [str(tmp_path), str(tmp_path / "gone")]
    first = found[0]
    st = os.statvfs(tmp_path)
    assert first["also"] == [str(tmp_path / "a")] and first["free_bytes"] == st.f_bavail * st.f_frsize
    assert 0 <= first["used_percent"] <= 100 and "error" in found[1]


def test_the_filter_renders_through_ansible(facts: dict) -> None:
    facts["services"] = recorded_ps("compose-ps-engine-stopped.jsonl")
    variables = json.dumps({"facts": facts, "limits": LIMITS})
    result = template("{{ facts | tengen.ops.status_lines(limits) }}", "-e", variables)
    assert result["problems"] == ["PROBLEM engine: container stopped (exit code 0)"]
