"""The rehearsal's reading of an endpoint where the scale-out track has not run (moto_server)."""

from __future__ import annotations

import sys

import boto3
import pytest

from tests.unit.conftest import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import (  # noqa: E402
    RehearsalError,
    read_snapshot,
)

pytestmark = pytest.mark.aws


def test_an_endpoint_without_the_stack_is_refused_naming_what_is_missing(aws_env: str) -> None:
    def client(service: str):
        return boto3.client(service, endpoint_url=aws_env, region_name="eu-west-1")

    missing = r"no active ECS cluster 'never-deployed' at this endpoint: run playbooks/scale-out/all.yml"
    with pytest.raises(RehearsalError, match=missing):
        read_snapshot(client, "never-deployed", "never-deployed")
    # A cluster without services (created by hand, not by the track) is refused too.
    client("ecs").create_cluster(clusterName="empty-rehearsal")
    try:
        with pytest.raises(RehearsalError, match=r"ECS cluster 'empty-rehearsal' runs no service"):
            read_snapshot(client, "empty-rehearsal", "empty-rehearsal")
    finally:
        client("ecs").delete_cluster(cluster="empty-rehearsal")
