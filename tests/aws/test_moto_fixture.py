"""The moto server answers real boto3 calls over HTTP on 127.0.0.1."""

from __future__ import annotations


def test_bucket_round_trip(s3_client, unique_name, moto_endpoint):
    assert moto_endpoint.startswith("http://127.0.0.1:")
    s3_client.create_bucket(Bucket=unique_name)
    s3_client.put_object(Bucket=unique_name, Key="a", Body=b"hello")
    assert s3_client.get_object(Bucket=unique_name, Key="a")["Body"].read() == b"hello"
