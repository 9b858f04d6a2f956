"""The cutover's filters: the database URL through a tunnel, the input checked up front, and the
players' DNS record kept for the way back."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tengen.ops.plugins.filter.cutover import (
    cutover_problems,
    cutover_record,
    database_url_via,
)

URL = "postgresql://tengen:s3cr%40t@tengen-db.abc.eu-west-1.rds.amazonaws.com:5432/tengen?sslmode=require"


def test_the_database_url_keeps_credentials_database_and_query_through_a_tunnel() -> None:
    assert (
        database_url_via(URL, "127.0.0.1:15432")
        == "postgresql://tengen:s3cr%40t@127.0.0.1:15432/tengen?sslmode=require"
    )
    assert database_url_via(URL, "") == URL


@pytest.mark.parametrize("address", ["127.0.0.1", "host:0", "host:99999", "a b:5432", "127.0.0.1:5432/x"])
def test_a_bad_tunnel_address_is_refused_without_the_password(address: str) -> None:
    with pytest.raises(AnsibleFilterError) as error:
        database_url_via(URL, address)
    assert "host:port" in str(error.value) and "s3cr" not in str(error.value)


def test_a_url_that_is_not_postgresql_is_refused_without_showing_it() -> None:
    with pytest.raises(AnsibleFilterError) as error:
        database_url_via("mysql://u:topsecret@h/db", "127.0.0.1:1")
    assert "topsecret" not in str(error.value)


GOOD = {
    "cutover_domain": "play.example.net",
    "cutover_hosted_zone": "example.net",
    "cutover_target_url": "https://ecs.example.net",
    "cutover_check_url": "http://127.0.0.1:18443",
    "cutover_database_url": URL,
}


def test_good_settings_have_no_problem() -> None:
    assert cutover_problems(GOOD) == []
    assert cutover_problems({**GOOD, "cutover_hosted_zone": "example.net."}) == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"cutover_domain": ""}, "cutover_domain"),
        ({"cutover_domain": "Play Example"}, "cutover_domain"),
        ({"cutover_hosted_zone": ""}, "cutover_hosted_zone"),
        ({"cutover_hosted_zone": "example.org"}, "does not hold cutover_domain"),
        ({"cutover_target_url": "ecs.example.net"}, "cutover_target_url"),
        ({"cutover_target_url": "https://ecs.example.net/api"}, "cutover_target_url"),
        ({"cutover_check_url": "ftp://x"}, "cutover_check_url"),
        ({"cutover_target_url": "https://play.example.net"}, "names cutover_domain itself"),
        ({"cutover_database_url": ""}, "cutover_database_url"),
    ],
)
def test_each_bad_setting_is_named(change: dict, named: str) -> None:
    problems = cutover_problems({**GOOD, **change})
    assert len(problems) == 1 and named in problems[0], problems


def test_the_record_before_is_kept_in_the_form_route53_takes_back() -> None:
    assert cutover_record({"resource_record_sets": []}, "play.example.net") == {
        "record": "play.example.net",
        "exists": False,
    }
    plain = {
        "resource_record_sets": [{"type": "A", "ttl": 60, "resource_records": [{"value": "203.0.113.7"}]}]
    }
    assert cutover_record(plain, "play.example.net") == {
        "record": "play.example.net",
        "exists": True,
        "type": "A",
        "alias": False,
        "ttl": 60,
        "value": ["203.0.113.7"],
    }
    alias = {
        "resource_record_sets": [
            {"type": "A", "alias_target": {"hosted_zone_id": "Z2", "dns_name": "old-lb.example.com."}}
        ]
    }
    kept = cutover_record(alias, "play.example.net")
    assert (
        kept["alias"] is True
        and kept["alias_hosted_zone_id"] == "Z2"
        and kept["value"] == "old-lb.example.com."
    )
