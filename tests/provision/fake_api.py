"""A local stand-in for the Lightsail and DigitalOcean APIs, for exactly the calls we make.

Neither provider can be reached from the test machines, and moto has no Lightsail, so the
provisioning playbooks are run against this server. It answers like the provider's API
(Lightsail JSON 1.1 with `X-Amz-Target: Lightsail_20161128.<Operation>`; DigitalOcean REST v2
under /v2), keeps state so that a second run sees what the first one made, and records every
call. It is a recording of our calls against a local endpoint, not a claim about the providers:
only the request and response shapes the modules rely on are modelled.

Control endpoints: GET /_fake/calls (the recording), POST /_fake/reset-calls, GET /_fake/state.
Run: python fake_api.py --port PORT --do-token TOKEN
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

LIGHTSAIL_PREFIX = "Lightsail_20161128."


class NotFound(Exception):
    pass


class Invalid(Exception):
    pass


class State:
    def __init__(self, do_token: str) -> None:
        self.lock = threading.Lock()
        self.calls: list[dict[str, Any]] = []
        self.do_token = do_token
        self.ids = itertools.count(1001)
        self.ips = (f"203.0.113.{n}" for n in itertools.count(10))
        # Lightsail
        self.key_pairs: dict[str, dict] = {}
        self.instances: dict[str, dict] = {}
        self.static_ips: dict[str, dict] = {}
        # DigitalOcean
        self.ssh_keys: dict[str, dict] = {}
        self.firewalls: dict[str, dict] = {}
        self.droplets: dict[int, dict] = {}
        self.reserved_ips: dict[str, dict] = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "lightsail": {
                "key_pairs": self.key_pairs,
                "instances": self.instances,
                "static_ips": self.static_ips,
            },
            "digitalocean": {
                "ssh_keys": self.ssh_keys,
                "firewalls": self.firewalls,
                "droplets": {str(k): v for k, v in self.droplets.items()},
                "reserved_ips": self.reserved_ips,
            },
        }


def operation(name: str, kind: str, resource: str) -> dict:
    return {
        "id": f"op-{name}-{resource}",
        "resourceName": resource,
        "resourceType": kind,
        "operationType": name,
        "status": "Succeeded",
        "isTerminal": True,
    }


# Lightsail: one function per operation, taking the state and the request body.


def ls_get_key_pair(st: State, body: dict) -> dict:
    name = body["keyPairName"]
    if name not in st.key_pairs:
        raise NotFound(f"The KeyPair does not exist: {name}")
    return {"keyPair": st.key_pairs[name]}


def ls_import_key_pair(st: State, body: dict) -> dict:
    name = body["keyPairName"]
    if name in st.key_pairs:
        raise Invalid(f"KeyPair already exists: {name}")
    if not body.get("publicKeyBase64", "").startswith("ssh-"):
        raise Invalid("publicKeyBase64 is not an OpenSSH public key")
    st.key_pairs[name] = {"name": name, "resourceType": "KeyPair", "fingerprint": "fake"}
    return {"operation": operation("ImportKeyPair", "KeyPair", name)}


def ls_delete_key_pair(st: State, body: dict) -> dict:
    ls_get_key_pair(st, body)
    del st.key_pairs[body["keyPairName"]]
    return {"operation": operation("DeleteKeyPair", "KeyPair", body["keyPairName"])}


def ls_get_instance(st: State, body: dict) -> dict:
    name = body["instanceName"]
    if name not in st.instances:
        raise NotFound(f"The Instance does not exist: {name}")
    return {"instance": st.instances[name]}


def ls_create_instances(st: State, body: dict) -> dict:
    [name] = body["instanceNames"]
    if name in st.instances:
        raise Invalid(f"Instance already exists: {name}")
    if body.get("keyPairName") and body["keyPairName"] not in st.key_pairs:
        raise NotFound(f"The KeyPair does not exist: {body['keyPairName']}")
    zone = body["availabilityZone"]
    ip = next(st.ips)
    st.instances[name] = {
        "name": name,
        "resourceType": "Instance",
        "blueprintId": body["blueprintId"],
        "bundleId": body["bundleId"],
        "location": {"availabilityZone": zone, "regionName": zone[:-1]},
        "state": {"code": 16, "name": "running"},
        "publicIpAddress": ip,
        "privateIpAddress": "172.26.0.10",
        "isStaticIp": False,
        "sshKeyName": body.get("keyPairName", ""),
        "username": "admin",
        "addOns": [],
        "networking": {"ports": []},
        "_fake_dynamic_ip": ip,
    }
    return {"operations": [operation("CreateInstance", "Instance", name)]}


def ls_put_instance_public_ports(st: State, body: dict) -> dict:
    name = body["instanceName"]
    ls_get_instance(st, body)
    st.instances[name]["networking"]["ports"] = [
        {
            "fromPort": p["fromPort"],
            "toPort": p["toPort"],
            "protocol": p["protocol"],
            "cidrs": p.get("cidrs", []),
            "ipv6Cidrs": p.get("ipv6Cidrs", []),
            "accessDirection": "inbound",
            "accessType": "public",
        }
        for p in body["portInfos"]
    ]
    return {"operation": operation("PutInstancePublicPorts", "Instance", name)}


def ls_delete_instance(st: State, body: dict) -> dict:
    name = body["instanceName"]
    ls_get_instance(st, body)
    for ip in st.static_ips.values():
        if ip["attachedTo"] == name:
            ip.update(attachedTo="", isAttached=False)
    del st.instances[name]
    return {"operations": [operation("DeleteInstance", "Instance", name)]}


def ls_get_static_ip(st: State, body: dict) -> dict:
    name = body["staticIpName"]
    if name not in st.static_ips:
        raise NotFound(f"The StaticIp does not exist: {name}")
    return {"staticIp": st.static_ips[name]}


def ls_allocate_static_ip(st: State, body: dict) -> dict:
    name = body["staticIpName"]
    if name in st.static_ips:
        raise Invalid(f"StaticIp already exists: {name}")
    st.static_ips[name] = {
        "name": name,
        "resourceType": "StaticIp",
        "ipAddress": next(st.ips),
        "attachedTo": "",
        "isAttached": False,
    }
    return {"operations": [operation("AllocateStaticIp", "StaticIp", name)]}


def ls_attach_static_ip(st: State, body: dict) -> dict:
    ip = ls_get_static_ip(st, body)["staticIp"]
    instance = ls_get_instance(st, body)["instance"]
    ip.update(attachedTo=instance["name"], isAttached=True)
    instance.update(publicIpAddress=ip["ipAddress"], isStaticIp=True)
    return {"operations": [operation("AttachStaticIp", "StaticIp", ip["name"])]}


def ls_detach_static_ip(st: State, body: dict) -> dict:
    ip = ls_get_static_ip(st, body)["staticIp"]
    instance = st.instances.get(ip["attachedTo"])
    if instance:
        instance.update(publicIpAddress=instance["_fake_dynamic_ip"], isStaticIp=False)
    ip.update(attachedTo="", isAttached=False)
    return {"operations": [operation("DetachStaticIp", "StaticIp", ip["name"])]}


def ls_release_static_ip(st: State, body: dict) -> dict:
    ip = ls_get_static_ip(st, body)["staticIp"]
    if ip["isAttached"]:
        # modelled strictly: the role detaches first
        raise Invalid(f"StaticIp {ip['name']} is attached to {ip['attachedTo']}")
    del st.static_ips[ip["name"]]
    return {"operations": [operation("ReleaseStaticIp", "StaticIp", ip["name"])]}


def ls_enable_add_on(st: State, body: dict) -> dict:
    instance = ls_get_instance(st, {"instanceName": body["resourceName"]})["instance"]
    request = body["addOnRequest"]
    if request["addOnType"] != "AutoSnapshot":
        raise Invalid(f"unsupported add-on {request['addOnType']}")
    instance["addOns"] = [
        {
            "name": "AutoSnapshot",
            "status": "Enabled",
            "snapshotTimeOfDay": request.get("autoSnapshotAddOnRequest", {}).get(
                "snapshotTimeOfDay", "06:00"
            ),
        }
    ]
    return {"operations": [operation("EnableAddOn", "Instance", instance["name"])]}


def ls_disable_add_on(st: State, body: dict) -> dict:
    instance = ls_get_instance(st, {"instanceName": body["resourceName"]})["instance"]
    instance["addOns"] = []
    return {"operations": [operation("DisableAddOn", "Instance", instance["name"])]}


LIGHTSAIL = {
    "GetKeyPair": ls_get_key_pair,
    "ImportKeyPair": ls_import_key_pair,
    "DeleteKeyPair": ls_delete_key_pair,
    "GetInstance": ls_get_instance,
    "CreateInstances": ls_create_instances,
    "PutInstancePublicPorts": ls_put_instance_public_ports,
    "DeleteInstance": ls_delete_instance,
    "GetStaticIp": ls_get_static_ip,
    "AllocateStaticIp": ls_allocate_static_ip,
    "AttachStaticIp": ls_attach_static_ip,
    "DetachStaticIp": ls_detach_static_ip,
    "ReleaseStaticIp": ls_release_static_ip,
    "EnableAddOn": ls_enable_add_on,
    "DisableAddOn": ls_disable_add_on,
}


def public(obj: Any) -> Any:
    """Drop the server's own bookkeeping keys (leading "_fake_") from an answer."""
    if isinstance(obj, dict):
        return {k: public(v) for k, v in obj.items() if not k.startswith("_fake_")}
    if isinstance(obj, list):
        return [public(v) for v in obj]
    return obj


# DigitalOcean: (method, path regex) -> function(state, match, body) -> (status, answer)


def page(key: str, items: list) -> tuple[int, dict]:
    return 200, {key: items, "links": {}, "meta": {"total": len(items)}}


def do_account(st, m, body):
    return 200, {"account": {"uuid": "fake-account", "status": "active", "droplet_limit": 25}}


def do_get_key(st, m, body):
    key = st.ssh_keys.get(m["fp"])
    return (200, {"ssh_key": key}) if key else (404, {"id": "not_found", "message": "not found"})


def do_create_key(st, m, body):
    from base64 import b64decode
    from hashlib import md5

    digest = md5(b64decode(body["public_key"].split()[1]), usedforsecurity=False).hexdigest()
    fp = ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    if fp in st.ssh_keys:
        return 422, {"id": "unprocessable_entity", "message": "SSH Key is already in use on your account"}
    st.ssh_keys[fp] = {
        "id": next(st.ids),
        "fingerprint": fp,
        "public_key": body["public_key"],
        "name": body["name"],
    }
    return 201, {"ssh_key": st.ssh_keys[fp]}


def do_delete_key(st, m, body):
    return (
        (204, None) if st.ssh_keys.pop(m["fp"], None) else (404, {"id": "not_found", "message": "not found"})
    )


def do_list_firewalls(st, m, body):
    return page("firewalls", list(st.firewalls.values()))


def do_create_firewall(st, m, body):
    if any(f["name"] == body["name"] for f in st.firewalls.values()):
        return 409, {"id": "conflict", "message": "duplicate name"}
    fid = f"fw-{next(st.ids)}"
    st.firewalls[fid] = {**firewall_fields(body), "id": fid, "status": "succeeded"}
    return 202, {"firewall": st.firewalls[fid]}


def firewall_fields(body: dict) -> dict:
    return {k: body.get(k) or [] for k in ("inbound_rules", "outbound_rules", "droplet_ids", "tags")} | {
        "name": body["name"]
    }


def do_update_firewall(st, m, body):
    if m["id"] not in st.firewalls:
        return 404, {"id": "not_found", "message": "not found"}
    st.firewalls[m["id"]].update(firewall_fields(body))
    return 200, {"firewall": st.firewalls[m["id"]]}


def do_delete_firewall(st, m, body):
    return (204, None) if st.firewalls.pop(m["id"], None) else (404, {"id": "not_found", "message": "x"})


def do_list_droplets(st, m, body):
    return page("droplets", list(st.droplets.values()))


def do_create_droplet(st, m, body):
    did = next(st.ids)
    ip = next(st.ips)
    features = [f for f in ("backups", "monitoring", "ipv6") if body.get(f)]
    st.droplets[did] = {
        "id": did,
        "name": body["name"],
        "status": "active",
        "size_slug": body["size"],
        "image": {"slug": body["image"]},
        "region": {"slug": body["region"]},
        "tags": body.get("tags") or [],
        "features": features,
        "ssh_key_fingerprints": body.get("ssh_keys") or [],
        "networks": {
            "v4": [{"ip_address": ip, "type": "public"}, {"ip_address": "10.0.0.5", "type": "private"}]
        },
    }
    return 202, {"droplet": st.droplets[did]}


def do_get_droplet(st, m, body):
    droplet = st.droplets.get(int(m["id"]))
    return (200, {"droplet": droplet}) if droplet else (404, {"id": "not_found", "message": "not found"})


def do_droplet_action(st, m, body):
    if int(m["id"]) not in st.droplets:
        return 404, {"id": "not_found", "message": "not found"}
    return 201, {"action": {"id": next(st.ids), "type": body["type"], "status": "completed"}}


def do_get_droplet_action(st, m, body):
    return 200, {"action": {"id": int(m["aid"]), "status": "completed"}}


def do_delete_droplet(st, m, body):
    droplet = st.droplets.pop(int(m["id"]), None)
    if not droplet:
        return 404, {"id": "not_found", "message": "not found"}
    for rip in st.reserved_ips.values():
        if rip["droplet"] and rip["droplet"]["id"] == droplet["id"]:
            rip["droplet"] = None
    return 204, None


def do_list_reserved_ips(st, m, body):
    return page("reserved_ips", list(st.reserved_ips.values()))


def do_create_reserved_ip(st, m, body):
    droplet = st.droplets.get(int(body["droplet_id"]))
    if not droplet:
        return 422, {"id": "unprocessable_entity", "message": "droplet not found"}
    ip = next(st.ips)
    st.reserved_ips[ip] = {"ip": ip, "region": droplet["region"], "droplet": droplet, "locked": False}
    return 202, {"reserved_ip": st.reserved_ips[ip]}


def do_reserved_ip_action(st, m, body):
    rip = st.reserved_ips.get(m["ip"])
    if not rip:
        return 404, {"id": "not_found", "message": "not found"}
    if body["type"] == "unassign":
        rip["droplet"] = None
    return 201, {"action": {"id": next(st.ids), "type": body["type"], "status": "completed"}}


def do_get_reserved_ip_action(st, m, body):
    return 200, {"action": {"id": int(m["aid"]), "status": "completed"}}


def do_delete_reserved_ip(st, m, body):
    rip = st.reserved_ips.get(m["ip"])
    if not rip:
        return 404, {"id": "not_found", "message": "not found"}
    if rip["droplet"]:
        # modelled strictly: the module unassigns first
        return 422, {"id": "unprocessable_entity", "message": "reserved IP is assigned"}
    del st.reserved_ips[m["ip"]]
    return 204, None


DIGITALOCEAN = [
    ("GET", r"account", do_account),
    ("GET", r"account/keys/(?P<fp>[0-9a-f:]+)", do_get_key),
    ("POST", r"account/keys", do_create_key),
    ("DELETE", r"account/keys/(?P<fp>[0-9a-f:]+)", do_delete_key),
    ("GET", r"firewalls", do_list_firewalls),
    ("POST", r"firewalls", do_create_firewall),
    ("PUT", r"firewalls/(?P<id>[\w-]+)", do_update_firewall),
    ("DELETE", r"firewalls/(?P<id>[\w-]+)", do_delete_firewall),
    ("GET", r"droplets", do_list_droplets),
    ("POST", r"droplets", do_create_droplet),
    ("GET", r"droplets/(?P<id>\d+)", do_get_droplet),
    ("POST", r"droplets/(?P<id>\d+)/actions", do_droplet_action),
    ("GET", r"droplets/(?P<id>\d+)/actions/(?P<aid>\d+)", do_get_droplet_action),
    ("DELETE", r"droplets/(?P<id>\d+)", do_delete_droplet),
    ("GET", r"reserved_ips", do_list_reserved_ips),
    ("POST", r"reserved_ips", do_create_reserved_ip),
    ("POST", r"reserved_ips/(?P<ip>[\d.]+)/actions", do_reserved_ip_action),
    ("GET", r"reserved_ips/(?P<ip>[\d.]+)/actions/(?P<aid>\d+)", do_get_reserved_ip_action),
    ("DELETE", r"reserved_ips/(?P<ip>[\d.]+)", do_delete_reserved_ip),
]


class Handler(BaseHTTPRequestHandler):
    server_version = "fake-provider-api"
    state: State

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def reply(self, status: int, answer: Any, content_type: str = "application/json") -> None:
        raw = b"" if answer is None else json.dumps(public(answer)).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return {"__unparsed": raw.decode(errors="replace")}

    def handle_any(self, method: str) -> None:
        body = self.body()
        url = urlsplit(self.path)
        st = self.state
        if url.path.startswith("/_fake/"):
            with st.lock:
                if url.path == "/_fake/calls":
                    return self.reply(200, st.calls)
                if url.path == "/_fake/state":
                    return self.reply(200, st.snapshot())
                if url.path == "/_fake/reset-calls" and method == "POST":
                    st.calls.clear()
                    return self.reply(200, {})
            return self.reply(404, {"message": "no such control endpoint"})
        target = self.headers.get("X-Amz-Target", "")
        if target:
            return self.lightsail(target, body or {})
        if url.path.startswith("/v2/"):
            return self.digitalocean(method, url.path[len("/v2/") :].rstrip("/"), url.query, body)
        return self.reply(404, {"message": f"unknown call {method} {self.path}"})

    def lightsail(self, target: str, body: dict) -> None:
        op = target.removeprefix(LIGHTSAIL_PREFIX)
        region = re.search(r"Credential=[^/]+/\d+/([^/]+)/lightsail/", self.headers.get("Authorization", ""))
        with self.state.lock:
            self.state.calls.append(
                {"api": "lightsail", "op": op, "region": region and region[1], "body": body}
            )
            handler = LIGHTSAIL.get(op)
            ctype = "application/x-amz-json-1.1"
            if not target.startswith(LIGHTSAIL_PREFIX) or handler is None:
                return self.reply(400, {"__type": "InvalidAction", "message": f"not modelled: {op}"}, ctype)
            try:
                return self.reply(200, handler(self.state, body), ctype)
            except NotFound as exc:
                return self.reply(400, {"__type": "NotFoundException", "message": str(exc)}, ctype)
            except Invalid as exc:
                return self.reply(400, {"__type": "InvalidInputException", "message": str(exc)}, ctype)

    def digitalocean(self, method: str, path: str, query: str, body: Any) -> None:
        st = self.state
        with st.lock:
            authorized = self.headers.get("Authorization") == f"Bearer {st.do_token}"
            st.calls.append(
                {
                    "api": "digitalocean",
                    "method": method,
                    "path": path,
                    "query": query,
                    "body": body,
                    "authorized": authorized,
                }
            )
            if not authorized:
                return self.reply(401, {"id": "unauthorized", "message": "Unable to authenticate you."})
            for verb, pattern, func in DIGITALOCEAN:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    status, answer = func(st, match.groupdict(), body)
                    return self.reply(status, answer)
            return self.reply(404, {"id": "not_found", "message": f"not modelled: {method} /v2/{path}"})

    def do_GET(self) -> None:  # noqa: N802
        self.handle_any("GET")

    def do_POST(self) -> None:  # noqa: N802
        self.handle_any("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self.handle_any("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self.handle_any("DELETE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--do-token", required=True)
    args = parser.parse_args()
    Handler.state = State(args.do_token)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
