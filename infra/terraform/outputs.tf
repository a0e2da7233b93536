output "bucket" {
  value = aws_s3_bucket.repository.id
}

output "table" {
  value = aws_dynamodb_table.versions.name
}

output "function_name" {
  value = aws_lambda_function.manager.function_name
}

output "topic_arn" {
  value = aws_sns_topic.events.arn
}

output "signing_key_secret_arn" {
  value = aws_secretsmanager_secret.signing_key.arn
}

output "region" {
  value = var.region
}

# For the CLI and the scripts (scripts/common.sh): where the repository lives in the
# bucket and the URL clients use, as the Lambda has them.
output "s3_prefix" {
  value = trim(var.s3_prefix, "/")
}

output "public_url" {
  value = var.public_url
}

# How the Lambda writes objects and names the keyring, and the CDN it invalidates: a
# publish from the CLI must do the same (with acl_mode = "public-read" an object
# written without its ACL stays private, and the Lambda never rewrites unchanged bytes).
output "acl_mode" {
  value = var.acl_mode
}

output "key_name" {
  value = var.key_name
}

output "cloudfront_distribution_id" {
  value = var.cloudfront_distribution_id
}
