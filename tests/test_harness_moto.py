"""The aws tier's harness: moto_server starts on a free port and boto3 reaches it through aws_env."""

from __future__ import annotations

import boto3
import pytest


@pytest.mark.aws
def test_moto_server_serves_the_aws_apis_through_aws_env(aws_env: str) -> None:
    s3 = boto3.client("s3", region_name="eu-west-1")
    s3.create_bucket(Bucket="tengen-harness", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="tengen-harness", Key="probe", Body=b"ok")
    assert s3.get_object(Bucket="tengen-harness", Key="probe")["Body"].read() == b"ok"
    # the managed policies the ECS track needs are loaded
    iam = boto3.client("iam")
    arn = "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
    assert iam.get_policy(PolicyArn=arn)["Policy"]["PolicyName"] == "AmazonECSTaskExecutionRolePolicy"
