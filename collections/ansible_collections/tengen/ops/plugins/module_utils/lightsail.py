"""Small helpers for the Lightsail modules of this collection (boto3 through amazon.aws)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code


def get_or_none(module: Any, call: Callable[..., dict], key: str, **kwargs: Any) -> dict | None:
    """Call a Lightsail Get* operation; None when the resource does not exist."""
    try:
        return call(**kwargs)[key]
    except is_boto3_error_code("NotFoundException"):
        return None
    except Exception as exc:  # noqa: BLE001 - reported through fail_json_aws with its AWS error code
        module.fail_json_aws(exc, msg=f"Lightsail {key} lookup failed")
