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
    assert "/dists/*" in sent
    assert not any(p.startswith("/pool") for p in sent)  # no new pool file in this publish
    # CloudFront accepts `*` only as the last character of a path.
    assert all("*" not in p[:-1] for p in sent)


def test_new_pool_files_are_invalidated_one_by_one_or_by_one_wildcard(tmp_path):
    settings = settings_for(tmp_path)
    # A version removed and added again with other bytes has its old file's name, which
    # the CDN may hold as immutable: new pool files are invalidated too.
    few = [f"pool/main/k/kiro/kiro_1.{n}_amd64.deb" for n in range(2)]
    paths = cdn_paths(settings, few)
    assert [p for p in paths if p.startswith("/pool/")] == [f"/{key}" for key in few]
    many = [f"pool/main/p/pkg{n}/pkg{n}_1.0_amd64.deb" for n in range(16)]
    assert [p for p in cdn_paths(settings, many) if p.startswith("/pool")] == ["/pool/*"]
    assert not any(p.startswith("/pool") for p in cdn_paths(settings))


def test_pool_paths_are_encoded_as_cloudfront_wants(tmp_path):
    keys = ["pool/main/k/kiro/kiro_1.0~rc1+dfsg_amd64.deb"]
    pool = [p for p in cdn_paths(settings_for(tmp_path), keys) if p.startswith("/pool")]
    assert pool == ["/pool/main/k/kiro/kiro_1.0%7Erc1%2Bdfsg_amd64.deb"]
