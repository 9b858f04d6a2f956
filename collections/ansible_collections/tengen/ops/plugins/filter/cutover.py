"""Filters of the cutover from the VM to ECS and of its way back (playbooks/scale-out/)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: database_url_via
short_description: The same PostgreSQL URL, reached at another host and port (a tunnel)
version_added: 0.1.0
description:
  - Replaces the host and port of a C(postgresql://) URL and keeps its user, password, database
    and query (C(sslmode)). An empty address returns the URL unchanged.
  - The error never shows the URL, which holds the password.
  - The file also holds C(cutover_problems), the cutover's input checked across variables (each
    problem naming its variable), and C(cutover_record), the players' DNS record before the
    cutover in the form that C(amazon.aws.route53) takes back.
options:
  _input:
    description: The database URL, as the services' secret holds it.
    type: str
    required: true
  address:
    description: C(host:port) where the controller reaches the database, for example a local SSH forward.
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Reach RDS through a forward on the controller
  ansible.builtin.set_fact:
    url: "{{ secret.DATABASE_URL | tengen.ops.database_url_via('127.0.0.1:15432') }}"
"""

RETURN = r"""
_value:
  description: The URL with its host and port replaced.
  type: str
"""

_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>[0-9]{1,5})$")


def database_url_via(url: str, address: str) -> str:
    if not address:
        return url
    match = _ADDRESS.match(str(address))
    if not match or not 0 < int(match["port"]) < 65536:
        raise AnsibleFilterError(f"database_url_via: give the address as host:port, not {address!r}")
    parts = urlsplit(str(url))
    if parts.scheme not in ("postgresql", "postgres") or "@" not in parts.netloc:
        raise AnsibleFilterError(
            "database_url_via: the database URL is not postgresql://user:password@host/..."
        )
    credentials = parts.netloc.rsplit("@", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@{address}"))


def cutover_problems(settings: dict[str, Any]) -> list[str]:
    """What is wrong with the cutover's input, each problem naming its variable; [] when none."""
    problems = []
    domain = str(settings.get("cutover_domain") or "")
    domain_ok = bool(re.match(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", domain))
    if not domain_ok:
        problems.append(f"cutover_domain: give the players' domain name, not {domain!r}")
    zone = str(settings.get("cutover_hosted_zone") or "").rstrip(".")
    if not zone:
        problems.append("cutover_hosted_zone: give the Route53 zone that holds cutover_domain")
    elif domain_ok and not (domain == zone or domain.endswith("." + zone)):
        problems.append(f"cutover_hosted_zone: {zone!r} does not hold cutover_domain {domain!r}")
    for name in ("cutover_target_url", "cutover_check_url"):
        value = urlsplit(str(settings.get(name) or ""))
        if value.scheme not in ("http", "https") or not value.hostname or value.path not in ("", "/"):
            problems.append(
                f"{name}: give the new stack's address as http(s)://host[:port], not {settings.get(name)!r}"
            )
    target = urlsplit(str(settings.get("cutover_target_url") or ""))
    if target.hostname and target.hostname == domain:
        problems.append(
            "cutover_target_url: it names cutover_domain itself; once the domain points at the ALB the VM "
            "would forward to itself or to stale DNS: give the stack's own name (scale_out_domain)"
        )
    if not settings.get("cutover_database_url"):
        problems.append("cutover_database_url: no database URL (the services' secret has no DATABASE_URL)")
    return problems


def cutover_record(before: dict[str, Any], domain: str) -> dict[str, Any]:
    """The DNS record of the players' domain before the cutover, as rollback.yml puts it back.

    `before` is amazon.aws.route53 state=get's result. An alias, a plain A record, or none.
    """
    sets = before.get("resource_record_sets") or []
    if not sets:
        return {"record": domain, "exists": False}
    found = sets[0]
    alias = found.get("alias_target")
    if alias:
        return {
            "record": domain,
            "exists": True,
            "type": found.get("type", "A"),
            "alias": True,
            "alias_hosted_zone_id": alias["hosted_zone_id"],
            "value": alias["dns_name"],
        }
    return {
        "record": domain,
        "exists": True,
        "type": found.get("type", "A"),
        "alias": False,
        "ttl": int(found.get("ttl", 300)),
        "value": [r["value"] for r in found.get("resource_records", [])],
    }


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "database_url_via": database_url_via,
            "cutover_problems": cutover_problems,
            "cutover_record": cutover_record,
        }
