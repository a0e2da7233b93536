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
