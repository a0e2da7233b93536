"""CloudFront invalidation after a publish, against moto's CloudFront API over HTTP."""

from __future__ import annotations

import boto3

from debrepo.aws import cdn_paths, invalidate_cloudfront
from tests.conftest import settings_for


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


def test_invalidation_names_the_metadata_paths(moto_endpoint, unique_name, tmp_path):
    distribution = _distribution(moto_endpoint, unique_name)
    paths = cdn_paths(settings_for(tmp_path, key_name="acme"))
    invalidation = invalidate_cloudfront(distribution, paths)

    cloudfront = boto3.client("cloudfront", endpoint_url=moto_endpoint, region_name="us-east-1")
    found = cloudfront.get_invalidation(DistributionId=distribution, Id=invalidation)
    sent = found["Invalidation"]["InvalidationBatch"]["Paths"]["Items"]
    assert sorted(sent) == sorted(paths)
    assert {"/index.html", "/kiro-repo.deb", "/acme-archive-keyring.gpg"} <= set(sent)
    assert "/acme-archive-keyring.asc" in sent
    # Pool and by-hash objects never change under their names: nothing to invalidate there.
    assert "/dists/*" in sent
    assert not any(p.startswith("/pool") for p in sent)
    # CloudFront accepts `*` only as the last character of a path.
    assert all("*" not in p[:-1] for p in sent)
