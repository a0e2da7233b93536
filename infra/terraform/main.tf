locals {
  name       = "kiro-debian-repo-manager-${var.env}"
  table_name = var.table_name != "" ? var.table_name : "kiro-debian-repo-manager-versions-${var.env}"
  # Where the repository lives in the bucket ("" for the root); staging/ stays at the root.
  repo_prefix = trim(var.s3_prefix, "/") == "" ? "" : "${trim(var.s3_prefix, "/")}/"
  # What clients may read; staging/ is never among them.
  public_objects = [for key in [
    "dists/*",
    "pool/*",
    "index.html",
    "kiro-repo.deb",
    "${var.key_name}-archive-keyring.gpg",
    "${var.key_name}-archive-keyring.asc",
  ] : "${local.repo_prefix}${key}"]
}

# --- metadata store ---------------------------------------------------------------
resource "aws_dynamodb_table" "versions" {
  name         = local.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "package_id"

  attribute {
    name = "package_id"
    type = "S"
  }
  attribute {
    name = "package_name"
    type = "S"
  }
  global_secondary_index {
    name            = "package_name-index"
    hash_key        = "package_name"
    projection_type = "ALL"
  }
  server_side_encryption {
    enabled = true
  }
  point_in_time_recovery {
    enabled = true
  }
}

# --- repository bucket --------------------------------------------------------------
resource "aws_s3_bucket" "repository" {
  bucket = var.bucket_name
}

resource "aws_s3_bucket_ownership_controls" "repository" {
  bucket = aws_s3_bucket.repository.id
  rule {
    object_ownership = var.acl_mode == "public-read" ? "BucketOwnerPreferred" : "BucketOwnerEnforced"
  }
}

# A large .deb goes up in parts: the parts of an upload that was cut off (a Lambda's
# timeout) are billed until aborted.
resource "aws_s3_bucket_lifecycle_configuration" "repository" {
  bucket = aws_s3_bucket.repository.id
  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_public_access_block" "repository" {
  bucket                  = aws_s3_bucket.repository.id
  block_public_acls       = var.acl_mode != "public-read"
  ignore_public_acls      = var.acl_mode != "public-read"
  block_public_policy     = false
  restrict_public_buckets = false
}

resource "aws_s3_bucket_policy" "public_read" {
  count      = var.acl_mode == "bucket-policy" ? 1 : 0
  bucket     = aws_s3_bucket.repository.id
  depends_on = [aws_s3_bucket_public_access_block.repository]
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "PublicReadOfTheRepositoryOnly"
      Effect    = "Allow"
      Principal = "*"
      Action    = "s3:GetObject"
      Resource  = [for key in local.public_objects : "${aws_s3_bucket.repository.arn}/${key}"]
    }]
  })
}

# --- notifications and signing key ------------------------------------------------
resource "aws_sns_topic" "events" {
  name = local.name
}

resource "aws_secretsmanager_secret" "signing_key" {
  name        = "${local.name}-signing-key"
  description = "ASCII-armoured OpenPGP secret key (Ed25519 or RSA >= 3072, no passphrase) that signs the repository. Set the value out of band."
}

# --- the Lambda ---------------------------------------------------------------------
resource "aws_cloudwatch_log_group" "lambda" {
  name              = "/aws/lambda/${local.name}"
  retention_in_days = 30
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "lambda" {
  name               = local.name
  assume_role_policy = data.aws_iam_policy_document.assume.json
}

data "aws_iam_policy_document" "lambda" {
  statement {
    sid = "MetadataStoreAndLock"
    actions = [
      "dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem",
      "dynamodb:UpdateItem", "dynamodb:Scan", "dynamodb:Query", "dynamodb:TransactWriteItems",
      "dynamodb:ConditionCheckItem",
    ]
    resources = [aws_dynamodb_table.versions.arn, "${aws_dynamodb_table.versions.arn}/index/*"]
  }
  statement {
    sid       = "Repository"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.repository.arn]
  }
  statement {
    sid = "RepositoryObjects"
    actions = concat(
      ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
      var.acl_mode == "public-read" ? ["s3:PutObjectAcl"] : [],
    )
    resources = ["${aws_s3_bucket.repository.arn}/*"]
  }
  statement {
    sid       = "SigningKey"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [aws_secretsmanager_secret.signing_key.arn]
  }
  statement {
    sid       = "Notifications"
    actions   = ["sns:Publish", "sns:GetTopicAttributes"]
    resources = [aws_sns_topic.events.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.lambda.arn}:*"]
  }
  dynamic "statement" {
    for_each = var.cloudfront_distribution_id == "" ? [] : [1]
    content {
      sid       = "Invalidation"
      actions   = ["cloudfront:CreateInvalidation"]
      resources = ["arn:aws:cloudfront::${data.aws_caller_identity.current.account_id}:distribution/${var.cloudfront_distribution_id}"]
    }
  }
}

data "aws_caller_identity" "current" {}

resource "aws_iam_role_policy" "lambda" {
  role   = aws_iam_role.lambda.id
  policy = data.aws_iam_policy_document.lambda.json
}

resource "aws_lambda_function" "manager" {
  function_name    = local.name
  role             = aws_iam_role.lambda.arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  handler          = "debrepo.aws_lambda.handler"
  runtime          = "python3.11"
  architectures    = ["x86_64"]
  timeout          = 900
  memory_size      = 1024
  ephemeral_storage {
    size = 2048 # the new .debs of one sync (kiro: several hundred MB) and a copy of one
  }
  environment {
    variables = {
      S3_BUCKET                    = aws_s3_bucket.repository.id
      S3_PREFIX                    = var.s3_prefix
      DYNAMODB_TABLE               = aws_dynamodb_table.versions.name
      SNS_TOPIC_ARN                = aws_sns_topic.events.arn
      SIGNING_KEY_SECRET_ID        = aws_secretsmanager_secret.signing_key.arn
      S3_ACL_MODE                  = var.acl_mode
      PUBLIC_URL                   = var.public_url
      CLOUDFRONT_DISTRIBUTION_ID   = var.cloudfront_distribution_id
      DEBREPO_KEY_NAME             = var.key_name # the keyring the bucket policy makes public
      POWERTOOLS_SERVICE_NAME      = "debrepo"
      POWERTOOLS_METRICS_NAMESPACE = "debrepo"
    }
  }
  depends_on = [aws_cloudwatch_log_group.lambda, aws_iam_role_policy.lambda]
}

resource "aws_cloudwatch_event_rule" "schedule" {
  name                = local.name
  schedule_expression = var.schedule_expression
}

resource "aws_cloudwatch_event_target" "schedule" {
  rule = aws_cloudwatch_event_rule.schedule.name
  arn  = aws_lambda_function.manager.arn
}

resource "aws_lambda_permission" "schedule" {
  statement_id  = "AllowScheduledSync"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.manager.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule.arn
}
