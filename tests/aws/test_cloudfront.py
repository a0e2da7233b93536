"""CloudFront invalidation after a publish, against moto's CloudFront API over HTTP."""

from __future__ import annotations

import boto3

from debrepo.aws import invalidate_cloudfront
from debrepo.aws_lambda import INVALIDATED_PATHS


def _distribution(moto_endpoint: str, origin_bucket: str) -> str:
    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    config = {
        "CallerReference": f"test-{origin_bucket}",
        "Comment": "repository",
        "Enabled": True,
        "DefaultCacheBehavior": {
            "TargetOriginId": "repo",
            "ViewerProtocolPolicy": "allow-all",
            "MinTTL": 0,
            "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
        },
        "Origins": {
            "Quantity": 1,
            "Items": [
                {
                    "Id": "repo",
                    "DomainName": f"{origin_bucket}.s3.amazonaws.com",
                    "S3OriginConfig": {"OriginAccessIdentity": ""},
                }
            ],
        },
    }
    return str(cloudfront.create_distribution(DistributionConfig=config)["Distribution"]["Id"])


def test_invalidation_names_the_metadata_paths(moto_endpoint, unique_name):
    distribution = _distribution(moto_endpoint, unique_name)
    invalidation = invalidate_cloudfront(distribution, INVALIDATED_PATHS)

    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    found = cloudfront.get_invalidation(DistributionId=distribution, Id=invalidation)
    paths = found["Invalidation"]["InvalidationBatch"]["Paths"]
    assert paths["Quantity"] == len(INVALIDATED_PATHS)
    assert sorted(paths["Items"]) == sorted(INVALIDATED_PATHS)
    # Pool and by-hash objects never change under their names: nothing to invalidate there.
    assert "/dists/*" in paths["Items"]
    assert not any(p.startswith("/pool") for p in paths["Items"])
