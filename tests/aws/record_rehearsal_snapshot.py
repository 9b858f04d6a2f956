"""Record what the rehearsal reads from an endpoint after playbooks/scale-out/all.yml ran there.

    python -m tests.aws.record_rehearsal_snapshot http://127.0.0.1:<moto port> \
        > tests/unit/data/rehearsal/moto-snapshot.json

The unit tests of the rehearsal's translation run on this file: moto's real describe_* answers,
including the generated database password of that throwaway moto run.
"""

from __future__ import annotations

import json
import sys

import boto3

from tests.unit.conftest import COLLECTIONS

sys.path.insert(0, str(COLLECTIONS))
from ansible_collections.tengen.ops.plugins.module_utils.ecs_rehearsal import read_snapshot  # noqa: E402


def main(endpoint: str, stack: str = "tengen-staging") -> None:
    def client(service: str):
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    json.dump(read_snapshot(client, stack, stack), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
