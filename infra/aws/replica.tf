# Off-host replication of the event log: Litestream in the container streams the SQLite log to this
# bucket, and eventstate writes head anchors beside it. The bucket is built to resist the host that
# writes to it: versioned (an overwrite keeps the old bytes), encrypted, closed to the public, TLS
# only, and the instance role may write and read but never delete or change the bucket's settings.
# Litestream's own retention is off; this bucket's lifecycle rule expires superseded versions.

# data.aws_caller_identity.current is declared in main.tf.

locals {
  replica_bucket = var.replica_bucket != "" ? var.replica_bucket : "${var.name}-replica-${data.aws_caller_identity.current.account_id}"
  replica_prefix = var.name
  replica_url    = "s3://${local.replica_bucket}/${local.replica_prefix}"
}

resource "aws_s3_bucket" "replica" {
  #checkov:skip=CKV_AWS_144:cross-region replication doubles the cost; enable it on the bucket if one region is not enough
  #checkov:skip=CKV_AWS_18:access logging needs a second bucket; CloudTrail data events are the better audit trail here
  #checkov:skip=CKV2_AWS_62:no consumer for event notifications
  #checkov:skip=CKV_AWS_145:SSE-S3 encrypts every object; a customer KMS key would add cost and a key policy to run
  bucket = local.replica_bucket
  # Destroy keeps a replica that holds data (it fails with BucketNotEmpty) unless told otherwise.
  force_destroy = var.destroy_replica
  tags          = { Name = "${var.name}-replica" }
}

resource "aws_s3_bucket_versioning" "replica" {
  bucket = aws_s3_bucket.replica.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "replica" {
  bucket = aws_s3_bucket.replica.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "replica" {
  bucket                  = aws_s3_bucket.replica.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "replica" {
  bucket = aws_s3_bucket.replica.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "replica" {
  bucket = aws_s3_bucket.replica.id

  # Current objects are never expired: Litestream needs its snapshots and LTX files to restore,
  # and an idle log writes no new snapshot. Superseded and deleted versions go after the window
  # in which an operator can still recover them.
  rule {
    id     = "expire-superseded-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.replica_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }

  depends_on = [aws_s3_bucket_versioning.replica]
}

data "aws_iam_policy_document" "replica_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.replica.arn,
      "${aws_s3_bucket.replica.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "replica" {
  bucket     = aws_s3_bucket.replica.id
  policy     = data.aws_iam_policy_document.replica_bucket.json
  depends_on = [aws_s3_bucket_public_access_block.replica]
}

# The instance writes the replica and reads it back (restore on a new instance), and nothing more.
data "aws_iam_policy_document" "replica_writer" {
  statement {
    sid       = "ListReplica"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.replica.arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.replica_prefix}/*", local.replica_prefix]
    }
  }

  statement {
    sid       = "WriteAndReadReplica"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${aws_s3_bucket.replica.arn}/${local.replica_prefix}/*"]
  }

  # Explicit, so that no policy attached later can grant it: the host never removes history,
  # never changes versioning, lifecycle, policy or encryption of the bucket.
  statement {
    sid    = "NeverDeleteOrReconfigure"
    effect = "Deny"
    actions = [
      "s3:DeleteObject",
      "s3:DeleteObjectVersion",
      "s3:DeleteBucket",
      "s3:DeleteBucketPolicy",
      "s3:PutBucketVersioning",
      "s3:PutLifecycleConfiguration",
      "s3:PutBucketPolicy",
      "s3:PutEncryptionConfiguration",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketObjectLockConfiguration",
      "s3:PutObjectRetention",
      "s3:BypassGovernanceRetention",
    ]
    resources = [
      aws_s3_bucket.replica.arn,
      "${aws_s3_bucket.replica.arn}/*",
    ]
  }
}

resource "aws_iam_role_policy" "replica" {
  name   = "${var.name}-replica"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.replica_writer.json
}
