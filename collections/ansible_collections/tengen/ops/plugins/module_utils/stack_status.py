"""The deployment at a glance: what the game VM's files and Docker say (collect), and the lines an
operator reads, each problem on a line of its own (render).

collect_* run on the VM (the stack_status module) and only read. render() runs on the controller
(the status_lines filter) from the collected facts, the thresholds and the scale advice.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

# --------------------------------------------------------------------------- services


def parse_compose_ps(text: str) -> list[dict[str, Any]]:
    """`docker compose ps --all --format json`: a JSON array (older Compose) or one object a line."""
    text = text.strip()
    if not text:
        return []
    if text.startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [
        {
            "service": row.get("Service", ""),
            "name": row.get("Name", ""),
            "state": row.get("State", ""),
            "health": row.get("Health", ""),
            "exit_code": row.get("ExitCode"),
            "status": row.get("Status", ""),
        }
        for row in rows
    ]


def services(expected: Sequence[str], containers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each service of the Compose file with its container (or none), in the file's order."""
    by_service: dict[str, Mapping[str, Any]] = {}
    for c in containers:
        # Of several containers of one service (a replica left over), a running one speaks for it.
        if c["service"] not in by_service or c["state"] == "running":
            by_service[c["service"]] = c
    names = list(expected) + sorted(set(by_service) - set(expected))
    return [
        {"service": s, "expected": s in expected, **dict(by_service.get(s, {"state": "missing"}))}
        for s in names
    ]


# --------------------------------------------------------------------------- TLS certificate


def _tlv(data: bytes, i: int) -> tuple[int, int, int]:
    """DER: the tag at i, where its content starts and where it ends."""
    tag, length = data[i], data[i + 1]
    i += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[i : i + n], "big")
        i += n
    return tag, i, i + length


def _der_time(tag: int, raw: bytes) -> dt.datetime:
    text = raw.decode("ascii").rstrip("Z")
    if tag == 0x17:  # UTCTime: two-digit year, 1950-2049
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    return dt.datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)


def certificate_validity(pem: str) -> tuple[dt.datetime, dt.datetime]:
    """notBefore and notAfter of the first certificate of a PEM file (no crypto library on the VM)."""
    import base64

    body = pem.split("-----BEGIN CERTIFICATE-----", 1)[1].split("-----END CERTIFICATE-----", 1)[0]
    der = base64.b64decode("".join(body.split()))
    _, cert, _ = _tlv(der, 0)
    _, i, _ = _tlv(der, cert)  # tbsCertificate
    tag, _, end = _tlv(der, i)
    if tag == 0xA0:  # explicit version
        i = end
    for _ in range(3):  # serial, signature algorithm, issuer
        _, _, i = _tlv(der, i)
    _, i, _ = _tlv(der, i)  # validity
    times = []
    for _ in range(2):
        tag, start, end = _tlv(der, i)
        times.append(_der_time(tag, der[start:end]))
        i = end
    return times[0], times[1]


def collect_certificate(caddy_data_dir: str, site: str) -> dict[str, Any]:
    """Caddy's certificate for the site (of every issuer Caddy keeps one from, the latest to expire)."""
    pattern = os.path.join(caddy_data_dir, "data", "caddy", "certificates", "*", site, f"{site}.crt")
    found = []
    for path in glob.glob(pattern):
        try:
            with open(path, encoding="ascii") as handle:
                not_before, not_after = certificate_validity(handle.read())
        except (OSError, ValueError, IndexError) as exc:
            found.append({"path": path, "error": str(exc) or type(exc).__name__})
            continue
        found.append(
            {
                "path": path,
                "issuer_dir": os.path.basename(os.path.dirname(os.path.dirname(path))),
                "not_before": int(not_before.timestamp()),
                "not_after": int(not_after.timestamp()),
            }
        )
    valid = [c for c in found if "not_after" in c]
    if valid:
        return {"site": site, **max(valid, key=lambda c: c["not_after"])}
    return {"site": site, "error": found[0]["error"] if found else f"no certificate under {pattern}"}


# --------------------------------------------------------------------------- backups, disk, files


def read_json(path: str) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        return {"error": f"{path}: {exc}"}


def collect_backups(backup_dir: str, status_file: str) -> dict[str, Any]:
    """sqlite_backup's status file (last attempt, last success, upload) and its local manifests."""
    manifests = []
    for path in glob.glob(os.path.join(backup_dir, "*.json")):
        if os.path.basename(path) == "status.json":
            continue
        data = read_json(path)
        if (
            isinstance(data, dict)
            and isinstance(data.get("name"), str)
            and isinstance(data.get("created"), str)
        ):
            manifests.append({"name": data["name"], "created": data["created"]})
    manifests.sort(key=lambda m: m["created"])
    return {
        "status": read_json(status_file),
        "local_count": len(manifests),
        "newest_local": (manifests or [None])[-1],
    }


def collect_disks(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Used share and free space of each path's filesystem, as df counts them (once a filesystem)."""
    out: list[dict[str, Any]] = []
    seen: dict[int, dict[str, Any]] = {}
    for path in paths:
        try:
            st = os.statvfs(path)
            dev = os.stat(path).st_dev
        except OSError as exc:
            out.append({"path": path, "error": str(exc)})
            continue
        if dev in seen:
            seen[dev]["also"].append(path)
            continue
        used = (st.f_blocks - st.f_bfree) * st.f_frsize
        avail = st.f_bavail * st.f_frsize
        entry = {
            "path": path,
            "also": [],
            "total_bytes": st.f_blocks * st.f_frsize,
            "free_bytes": avail,
            "used_percent": math.ceil(100 * used / (used + avail)) if used + avail else 0,
        }
        seen[dev] = entry
        out.append(entry)
    return out


# --------------------------------------------------------------------------- rendering


def age_text(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def limit_text(hours: float) -> str:
    return age_text(hours * 3600)


def when_text(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def gigabytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB"


def _services(facts: Mapping[str, Any], out: list[str]) -> None:
    listed = facts.get("services") or []
    if facts.get("services_error"):
        out.append(f"PROBLEM services: {facts['services_error']}")
    for s in listed:
        name, state, health = s["service"], s.get("state", ""), s.get("health") or ""
        text = state + (f", {health}" if health else "")
        if not s.get("expected", True):
            out.append(f"service {name}: {text} (not in the Compose file)")
            continue
        out.append(f"service {name}: {text}" + (f" ({s['status']})" if s.get("status") else ""))
        if state == "missing":
            out.append(f"PROBLEM {name}: no container")
        elif state in ("exited", "dead", "created"):
            out.append(
                f"PROBLEM {name}: container stopped"
                + (f" (exit code {s['exit_code']})" if s.get("exit_code") is not None else "")
            )
        elif state != "running":
            out.append(f"PROBLEM {name}: container {state}")
        elif health == "unhealthy":
            out.append(f"PROBLEM {name}: container unhealthy")


def _releases(facts: Mapping[str, Any], out: list[str]) -> None:
    ledger = facts.get("releases")
    if not isinstance(ledger, dict) or ledger.get("error"):
        out.append("PROBLEM release: " + ((ledger or {}).get("error") or "no release ledger on the VM"))
        return
    releases = [r for r in ledger.get("releases") or [] if isinstance(r, dict)]
    if not releases:
        out.append("PROBLEM release: no release recorded in the ledger")
        return
    live = releases[0]
    images = ", ".join(f"{k}={v}" for k, v in sorted((live.get("images") or {}).items()))
    out.append(f"release live: {live.get('id')} (backend slot {live.get('slot')}): {images}")
    kept = [r.get("id") for r in releases[1:]]
    out.append(
        f"release kept: {', '.join(kept)} (a rollback goes to {kept[0]})"
        if kept
        else "release kept: none (no rollback possible)"
    )


def _certificate(facts: Mapping[str, Any], t: Mapping[str, Any], now: float, out: list[str]) -> None:
    cert = facts.get("certificate")
    if cert is None:
        return
    site = cert.get("site", "?")
    if cert.get("error"):
        out.append(f"tls {site}: unknown")
        out.append(f"PROBLEM tls: {cert['error']}")
        return
    left = cert["not_after"] - now
    lifetime = cert["not_after"] - cert["not_before"]
    out.append(
        f"tls {site}: certificate valid until {when_text(cert['not_after'])}, {age_text(left)} left "
        f"of {age_text(lifetime)} ({cert.get('issuer_dir', '?')})"
    )
    share = float(t["tls_min_remaining_share"])
    if left <= 0:
        out.append(f"PROBLEM tls: the certificate of {site} expired {age_text(-left)} ago")
    elif left < share * lifetime:
        out.append(
            f"PROBLEM tls: the certificate of {site} has {age_text(left)} left, under {share:g} of its "
            f"{age_text(lifetime)} (Caddy renews at 1/3 left: is renewal failing?)"
        )


def _backups(facts: Mapping[str, Any], t: Mapping[str, Any], now: float, out: list[str]) -> None:
    b = facts.get("backups")
    if b is None:
        return
    status = b.get("status")
    limit = float(t["backup_max_age_hours"])
    newest = b.get("newest_local")
    local = f"{b.get('local_count', 0)} local" + (f", newest {newest['name']}" if newest else "")
    if not isinstance(status, dict) or status.get("error") and "last_attempt" not in status:
        out.append(f"backup: no status ({local})")
        out.append("PROBLEM backup: " + ((status or {}).get("error") or "no backup has run (no status file)"))
        return
    success = status.get("last_success_epoch")
    if success:
        age = now - success
        out.append(f"backup: newest is {age_text(age)} old (limit {limit_text(limit)}), {local}")
        if age > limit * 3600:
            out.append(f"PROBLEM backup: newest is {age_text(age)} old (limit {limit_text(limit)})")
    else:
        out.append(f"backup: none succeeded yet ({local})")
        out.append("PROBLEM backup: no backup has succeeded")
    if status.get("last_result") == "failed":
        out.append(
            f"PROBLEM backup: the last attempt ({status.get('last_attempt', '?')}) failed: "
            f"{status.get('error') or '?'}"
        )
    upload = status.get("last_upload_success_epoch")
    if not t.get("offsite_expected"):
        out.append(
            "offsite: none configured" + (f" (last upload {age_text(now - upload)} ago)" if upload else "")
        )
        return
    if not upload:
        out.append("offsite: no upload yet")
        out.append("PROBLEM offsite: a bucket is configured but no backup was uploaded")
        return
    age = now - upload
    out.append(f"offsite: last upload {age_text(age)} ago ({status.get('s3_uri') or 'uri unknown'})")
    if age > limit * 3600:
        out.append(f"PROBLEM offsite: the last upload is {age_text(age)} old (limit {limit_text(limit)})")


def _disks(facts: Mapping[str, Any], t: Mapping[str, Any], out: list[str]) -> None:
    limit = float(t["disk_max_used_percent"])
    for d in facts.get("disks") or []:
        if d.get("error"):
            out.append(f"PROBLEM disk: {d['path']}: {d['error']}")
            continue
        also = f" (also {', '.join(d['also'])})" if d.get("also") else ""
        out.append(
            f"disk {d['path']}{also}: {d['used_percent']}% used, {gigabytes(d['free_bytes'])} free "
            f"of {gigabytes(d['total_bytes'])} (limit {limit:g}%)"
        )
        if d["used_percent"] > limit:
            out.append(f"PROBLEM disk: {d['used_percent']}% used on {d['path']} (limit {limit:g}%)")


def _maintenance(facts: Mapping[str, Any], out: list[str]) -> None:
    flag = facts.get("maintenance")
    if isinstance(flag, dict) and not flag.get("error"):
        out.append(f"maintenance: on ({flag.get('reason', '?')}; writes refused)")
    elif flag is None:
        out.append("maintenance: off")
    else:
        out.append(f"maintenance: on (unreadable flag: {flag['error']})")


def _scale(scale: Mapping[str, Any] | None, out: list[str]) -> None:
    if not scale:
        return
    if scale.get("error"):
        out.append(f"scale advice: none ({scale['error']})")
        return
    w = scale.get("window") or {}
    out.append(
        f"scale advice: {scale['decision']}: {scale['target']} "
        f"(from {w.get('samples', '?')} samples over {w.get('days', 0):g} days)"
    )
    for c in scale.get("causes") or []:
        out.append(f"scale cause: {c['text']} -> {c['points_to']}")
    for h in scale.get("headroom") or []:
        left = "" if h.get("headroom_percent") is None else f", {h['headroom_percent']:g}% left"
        out.append(f"scale figure {h['figure']}: {h['value']:g} / {h['limit']:g} {h['unit']}{left}")
    for text in scale.get("notices") or []:
        out.append(f"scale notice: {text}")


def _audit(facts: Mapping[str, Any], out: list[str]) -> None:
    entries = facts.get("audit")
    if entries is None:
        return
    if not entries:
        out.append("audit: no entries yet")
    for e in entries:
        who = f"{e.get('controller_user', '?')}@{e.get('controller', '?')} as {e.get('ansible_user', '?')}"
        release = f" release {e['release']}" if e.get("release") else ""
        detail = f": {e['detail']}" if e.get("detail") else ""
        out.append(
            f"audit {e.get('time', '?')} {who}: {e.get('action', '?')} {e.get('outcome', '?')}"
            f"{release}{detail}"
        )


def render(
    facts: Mapping[str, Any], thresholds: Mapping[str, Any], scale: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The lines of the status, each PROBLEM on its own line right after its item, and the problems."""
    now = float(facts.get("now") or dt.datetime.now(dt.UTC).timestamp())
    lines: list[str] = [f"host {facts.get('host', '?')} at {when_text(now)}"]
    _services(facts, lines)
    _releases(facts, lines)
    _certificate(facts, thresholds, now, lines)
    _backups(facts, thresholds, now, lines)
    _disks(facts, thresholds, lines)
    _maintenance(facts, lines)
    _scale(scale, lines)
    _audit(facts, lines)
    problems = [line for line in lines if line.startswith("PROBLEM ")]
    lines.append(
        f"{len(problems)} problem{'s' if len(problems) != 1 else ''}" if problems else "OK: no problems"
    )
    return {"lines": lines, "problems": problems}
