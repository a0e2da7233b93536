variable "env" {
  description = "Environment name: dev, staging or prod."
  type        = string
}

variable "region" {
  description = "AWS region for every resource."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "Bucket for the published repository (public read) and staging/ (private)."
  type        = string
}

variable "table_name" {
  description = "Name of the metadata table (key package_id). Empty: kiro-debian-repo-manager-versions-<env>. Set another name when a table of the old schema (key version) already has that one; see `debrepo migrate-table`."
  type        = string
  default     = ""
}

variable "acl_mode" {
  description = "bucket-policy (ACLs disabled, public read by bucket policy) or public-read (objects carry the public-read ACL)."
  type        = string
  default     = "bucket-policy"
  validation {
    condition     = contains(["bucket-policy", "public-read"], var.acl_mode)
    error_message = "acl_mode must be bucket-policy or public-read."
  }
}

variable "lambda_zip" {
  description = "Deployment artifact built by `make lambda-package` (build/debrepo-lambda.zip)."
  type        = string
  default     = "../../build/debrepo-lambda.zip"
}

variable "schedule_expression" {
  description = "How often the scheduled sync runs; it also re-signs the Release before Valid-Until."
  type        = string
  default     = "rate(1 hour)"
}

variable "public_url" {
  description = "URL clients use to reach the repository (CloudFront or the bucket website). Empty: the bucket's S3 URL."
  type        = string
  default     = ""
}

variable "cloudfront_distribution_id" {
  description = "Optional CloudFront distribution in front of the bucket, invalidated after each publish."
  type        = string
  default     = ""
}

variable "key_name" {
  description = "Keyring name: <key_name>-archive-keyring.gpg at the repository root."
  type        = string
  default     = "kiro"
}

variable "s3_prefix" {
  description = "Folder of the bucket the repository is published under (\"\" for the bucket root). The default public URL, the bucket policy and the Lambda follow it; staging/ stays at the root."
  type        = string
  default     = ""
  validation {
    condition     = split("/", trim(var.s3_prefix, "/"))[0] != "staging"
    error_message = "s3_prefix must not start with staging/, which is never public."
  }
}
