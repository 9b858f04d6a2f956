"""Filters for the game_stack role: cross-field validation that argument_specs cannot express."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

DOCUMENTATION = r"""
name: game_stack_problems
short_description: List what is wrong with a game_stack configuration
version_added: 0.1.0
description:
  - Checks the rules that span several variables of the game_stack role and returns one message
    per problem, each naming the variable to fix. An empty list means the configuration is sound.
  - Rules - production needs a domain and an ACME email (full profile only); every image reference
    is well formed and immutable (a tag other than C(latest), or a digest); published ports do not
    collide; the engine memory limit is at least what the chosen engine needs; the engine profile
    needs an engine token; a token has 16 characters or more; engine VM URLs are http(s) URLs
    with a host and a port; an engine VM is not also a game VM (keys C(host), C(game_vm_hosts),
    C(engine_vm_hosts)) and no engine URL points at the game VM itself (C(host_addresses));
    C(engine_on_vms) with no engine URL (an empty engines group) is refused; every memory limit
    is a size of 6m or more, every tmpfs size a size above zero, every process limit 1 or more
    (key C(limits), dicts C(memory), C(tmpfs), C(pids) of variable name to value); the fair-use
    counts are whole numbers of 0 or more (the engine slots 1 or more, the largest WebSocket
    message 64 bytes or more) and every trusted proxy a network (key C(fair_use), variable name
    to value).
options:
  _input:
    description: The configuration, a dict with the keys shown in the example.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Stop before any change when the configuration is unsound
  vars:
    problems: "{{ {'environment': game_stack_environment, 'domain': game_stack_domain,
      'acme_email': game_stack_acme_email, 'images': {'game_stack_backend_image': 'tengen/backend:1'},
      'ports': {'game_stack_http_port': 80, 'game_stack_https_port': 443},
      'engine_variant': 'gnugo', 'engine_memory_limit': '512m',
      'engine_memory_minimum': {'gnugo': '256m', 'katago': '1g'}} | tengen.ops.game_stack_problems }}"
  ansible.builtin.assert:
    that: problems | length == 0
    fail_msg: "{{ problems | join('; ') }}"
"""

RETURN = r"""
_value:
  description: One message per problem, each naming the variable concerned.
  type: list
  elements: str
"""

# The reference grammar of github.com/distribution/reference, condensed.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
_DOMAIN = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_REFERENCE = re.compile(
    rf"^(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_COMPONENT}(?:/{_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]{2,63}$")


def parse_image_reference(ref: str) -> dict[str, str | None] | None:
    """Split an image reference into domain, path, tag and digest; None when malformed."""
    if not isinstance(ref, str) or len(ref) > 255:
        return None
    match = _REFERENCE.match(ref)
    if not match:
        return None
    domain = match.group("domain")
    path = match.group("path")
    # "registry/name" and "name/name" are told apart as Docker does:
    # a domain has a dot or a port, or is localhost.
    if domain and not ("." in domain or ":" in domain or domain == "localhost" or domain.startswith("[")):
        path = f"{domain}/{path}"
        domain = None
    return {"domain": domain, "path": path, "tag": match.group("tag"), "digest": match.group("digest")}


def parse_size(value: Any) -> int | None:
    """Bytes in a Docker-style size ("512m", "2g", "1.5GiB", 1073741824); None when not a size."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if not isinstance(value, str):
        return None
    match = _SIZE.match(value)
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def image_problems(images: dict[str, str]) -> list[str]:
    """Keys are variable names, or image names (backend, engine...) read as game_stack_<name>_image."""
    problems = []
    for name, ref in sorted(images.items()):
        var = name if name.startswith("game_stack_") else f"game_stack_{name}_image"
        parsed = parse_image_reference(ref)
        if parsed is None:
            problems.append(f"{var}: {ref!r} is not a valid image reference (expected [registry/]name:tag)")
        elif not parsed["digest"] and parsed["tag"] in (None, "latest"):
            problems.append(
                f"{var}: {ref!r} has no immutable tag; releases need a fixed tag or a digest, not 'latest'"
            )
    return problems


def port_problems(ports: dict[str, Any]) -> list[str]:
    problems = []
    seen: dict[int, str] = {}
    for var, port in ports.items():
        if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
            problems.append(f"{var}: {port!r} is not a TCP port (1-65535)")
            continue
        if port in seen:
            problems.append(f"{var} and {seen[port]} are both {port}: each published port must be distinct")
        else:
            seen[port] = var
    return problems


def game_stack_problems(config: dict[str, Any]) -> list[str]:
    """Every problem found in the configuration, each message naming the variable to fix."""
    problems: list[str] = []
    profile = config.get("profile", "full")
    if config.get("environment") == "production" and profile == "full":
        domain = config.get("domain") or ""
        email = config.get("acme_email") or ""
        if not domain:
            problems.append("game_stack_domain: production needs the public domain name for its certificate")
        elif not _HOSTNAME.match(domain):
            problems.append(f"game_stack_domain: {domain!r} is not a fully qualified host name")
        if not email:
            problems.append("game_stack_acme_email: production needs an email address for the ACME account")
        elif not _EMAIL.match(email):
            problems.append(f"game_stack_acme_email: {email!r} is not an email address")
    problems += image_problems(config.get("images") or {})
    problems += port_problems(config.get("ports") or {})

    variant = config.get("engine_variant")
    minimums = config.get("engine_memory_minimum") or {}
    limit = parse_size(config.get("engine_memory_limit"))
    if limit is None:
        value = config.get("engine_memory_limit")
        problems.append(f"game_stack_engine_memory_limit: {value!r} is not a size (e.g. 512m, 2g)")
    elif variant in minimums:
        minimum = parse_size(minimums[variant])
        if minimum is not None and limit < minimum:
            problems.append(
                f"game_stack_engine_memory_limit: {config.get('engine_memory_limit')} is below the "
                f"{minimums[variant]} the {variant} engine needs"
            )
    problems += engine_link_problems(
        profile, config.get("engine_token") or "", config.get("engine_remote_urls")
    )
    problems += engine_vm_problems(profile, config)
    problems += limit_problems(config.get("limits") or {})
    problems += fair_use_problems(config.get("fair_use") or {})
    return problems


# The least each fair-use count may be (the backend refuses to start below it).
FAIR_USE_MINIMUM = {"game_stack_engine_slots": 1, "game_stack_ws_max_message": 64}


def fair_use_problems(fair_use: dict[str, Any]) -> list[str]:
    """The backend's fair-use limits and the proxies it believes, keyed by variable name."""
    problems = []
    for var, value in sorted(fair_use.items()):
        if var == "game_stack_trusted_proxies":
            if not isinstance(value, list):
                problems.append(f"{var}: {value!r} is not a list of networks")
                continue
            for net in value:
                try:
                    ipaddress.ip_network(str(net), strict=False)
                except ValueError:
                    problems.append(f"{var}: {net!r} is not a network (e.g. 172.16.0.0/12, fc00::/7)")
            continue
        minimum = FAIR_USE_MINIMUM.get(var, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            problems.append(f"{var}: {value!r} is not a whole number of {minimum} or more")
    return problems


# Docker refuses a memory limit under 6 MiB; 0 or -1 processes would mean no limit at all.
MIN_MEMORY = 6 * 1024**2


def limit_problems(limits: dict[str, dict[str, Any]]) -> list[str]:
    """Memory and tmpfs sizes, and process limits, keyed by variable name under memory, tmpfs, pids."""
    problems = []
    for var, value in sorted((limits.get("memory") or {}).items()):
        size = parse_size(value)
        if size is None or size < MIN_MEMORY:
            problems.append(f"{var}: {value!r} is not a memory size of 6m or more (e.g. 128m, 1g)")
    for var, value in sorted((limits.get("tmpfs") or {}).items()):
        size = parse_size(value)
        if not size:
            problems.append(f"{var}: {value!r} is not a size above zero (e.g. 16m)")
    for var, value in sorted((limits.get("pids") or {}).items()):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(
                f"{var}: {value!r} is not a number of processes (1 or more; 0 and -1 lift the limit)"
            )
    return problems


_ENGINE_URL = re.compile(r"^https?://[A-Za-z0-9.-]+:[0-9]{1,5}/?$")
MIN_TOKEN = 16


def engine_link_problems(profile: str, token: str, urls: Any) -> list[str]:
    """The secret and the addresses that tie a backend to engine VMs."""
    problems = []
    if profile == "engine" and not token:
        problems.append(
            "game_stack_engine_token: an engine VM is reached over the network and needs the shared secret"
        )
    elif token and len(token) < MIN_TOKEN:
        problems.append(f"game_stack_engine_token: {MIN_TOKEN} characters or more (the gateway refuses less)")
    if not isinstance(urls, list):
        urls = [] if urls is None else [urls]
    for url in urls:
        if not isinstance(url, str) or not _ENGINE_URL.match(url):
            problems.append(f"game_stack_engine_remote_urls: {url!r} is not http://HOST:PORT")
    if urls and not token:
        problems.append("game_stack_engine_remote_urls: engine VMs need game_stack_engine_token")
    return problems


def _url_host(url: Any) -> str:
    match = re.match(r"^https?://([^:/]+)", url) if isinstance(url, str) else None
    return match.group(1).lower() if match else ""


def engine_vm_problems(profile: str, config: dict[str, Any]) -> list[str]:
    """An engine VM is a machine of its own, and engine VMs the backend is told to use exist.

    Keys: host (this inventory host), host_addresses (its addresses), game_vm_hosts and
    engine_vm_hosts (the inventory groups), engine_on_vms (the backend must use engine VMs).
    """
    problems = []
    host = config.get("host") or ""
    game_vms = list(config.get("game_vm_hosts") or [])
    engine_vms = list(config.get("engine_vm_hosts") or [])
    if host and host in game_vms and host in engine_vms:
        problems.append(
            f"game_stack_engine_vm_hosts: {host} is also a game VM (in game_stack_game_vm_hosts); "
            "an engine VM must be a machine of its own"
        )
    if profile != "full":
        return problems
    urls = config.get("engine_remote_urls")
    if not isinstance(urls, list):
        urls = [] if urls is None else [urls]
    own = {str(a).lower() for a in config.get("host_addresses") or [] if a}
    for url in urls:
        if _url_host(url) in own:
            problems.append(
                f"game_stack_engine_remote_urls: {url} is this game VM itself ({host or 'this host'}); "
                "an engine VM must be a machine of its own"
            )
    if config.get("engine_on_vms") and not urls:
        problems.append(
            "game_stack_engine_on_vms: the backend is told to use engine VMs, but "
            "game_stack_engine_remote_urls is empty (the engines group has no hosts)"
        )
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"game_stack_problems": game_stack_problems}
