# eventstate on one EC2 instance: Amazon Linux 2023 runs the container image, the event log lives on
# its own encrypted EBS volume, API keys come from SSM Parameter Store, and the only way in is HTTPS
# through the Caddy container (tls.tf) from allowed_cidrs (plus SSM Session Manager; SSH only when a
# key is given). The app's own port is published nowhere. The address is an Elastic IP (network.tf).

locals {
  tags = merge(var.tags, {
    Project     = "eventstate"
    Stack       = var.name
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  subnet_id   = coalesce(var.subnet_id, sort(data.aws_subnets.default.ids)[0])
  registry    = split("/", aws_ecr_repository.this.repository_url)[0]
  image       = var.image != "" ? var.image : "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
  uses_ecr    = var.image == "" || startswith(var.image, "${local.registry}/")
  ssh_enabled = var.ssh_key_name != null
}

# Amazon Linux 2 reached end of support; AWS publishes the current AL2023 AMI id in this parameter.
data "aws_ssm_parameter" "al2023_ami" {
  name = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"
}

data "aws_vpc" "default" {
  default = true
}

data "aws_subnets" "default" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.default.id]
  }
}

data "aws_subnet" "this" {
  id = local.subnet_id
}

data "aws_partition" "current" {}

data "aws_caller_identity" "current" {}

# ---- image -----------------------------------------------------------------------------------

resource "aws_ecr_repository" "this" {
  name = var.name
  # Tags are immutable: the deploy session tags each build <version>-<image id>, so a tag always
  # names the same bytes. force_delete lets destroy remove the repository with its images.
  image_tag_mutability = "IMMUTABLE"
  force_delete         = true

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
  }
}

# ---- secrets ---------------------------------------------------------------------------------

resource "aws_ssm_parameter" "api_keys" {
  #checkov:skip=CKV_AWS_337:the AWS-managed aws/ssm key encrypts it; a customer key would add cost and a key policy to run, and only the instance role may read the parameter
  name        = "/${var.name}/api-keys"
  description = "eventstate API keys, one per line; read by the instance at boot."
  type        = "SecureString"
  # Write-only: sent to SSM, never stored in the Terraform state. Bump api_keys_version to rotate.
  value_wo         = join("\n", var.api_keys)
  value_wo_version = var.api_keys_version
}

# ---- identity --------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume_ec2" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "instance" {
  statement {
    sid       = "ReadApiKeys"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.api_keys.arn]
  }

  statement {
    sid       = "DecryptApiKeys"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["ssm.${var.region}.amazonaws.com"]
    }
  }

  dynamic "statement" {
    for_each = var.domain == "" ? [1] : []
    content {
      sid       = "PublishRootCertificate"
      actions   = ["ssm:PutParameter"]
      resources = ["arn:${data.aws_partition.current.partition}:ssm:${var.region}:${data.aws_caller_identity.current.account_id}:parameter${local.ca_parameter_name}"]
    }
  }

  statement {
    sid       = "ShipContainerLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid       = "ReportHealthMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "cloudwatch:namespace"
      values   = [local.metrics_namespace]
    }
  }

  statement {
    sid     = "ReadImageReference"
    actions = ["ssm:GetParameter"]
    # Built from the name: the provider marks the parameter's arn unknown whenever its value changes,
    # which would show every image upgrade as a policy change too.
    resources = ["arn:${data.aws_partition.current.partition}:ssm:${var.region}:${data.aws_caller_identity.current.account_id}:parameter/${var.name}/image"]
  }

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  statement {
    sid       = "PullImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.this.arn]
  }
}

resource "aws_iam_role" "instance" {
  name               = "${var.name}-instance"
  description        = "eventstate instance: SSM Session Manager, its API keys parameter, image pulls."
  assume_role_policy = data.aws_iam_policy_document.assume_ec2.json
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.instance.name
  policy_arn = "arn:${data.aws_partition.current.partition}:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "instance" {
  name   = "${var.name}-instance"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.instance.json
}

resource "aws_iam_instance_profile" "instance" {
  name = "${var.name}-instance"
  role = aws_iam_role.instance.name
}

# ---- network ---------------------------------------------------------------------------------

resource "aws_security_group" "instance" {
  #checkov:skip=CKV_AWS_24:port 22 opens only to var.ssh_cidrs, whose validation refuses /0; checkov cannot see through the dynamic block
  #checkov:skip=CKV_AWS_260:port 80 is public only with a domain, for Let's Encrypt's HTTP-01 challenge; Caddy answers it with redirects to HTTPS, which stays limited to allowed_cidrs
  count       = local.single ? 1 : 0
  name        = "${var.name}-instance"
  description = "eventstate: HTTPS (and HTTP redirects) from allowed CIDRs; HTTPS out for packages, ECR, SSM"
  vpc_id      = data.aws_subnet.this.vpc_id

  ingress {
    description = "HTTPS to the TLS terminator from the allowed CIDRs"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = var.allowed_cidrs
  }

  ingress {
    description = "HTTP for redirects to HTTPS and ACME challenges (public only with a domain, for Lets Encrypt)"
    from_port   = 80
    to_port     = 80
    protocol    = "tcp"
    cidr_blocks = var.domain != "" ? ["0.0.0.0/0"] : var.allowed_cidrs
  }

  dynamic "ingress" {
    for_each = local.ssh_enabled && length(var.ssh_cidrs) > 0 ? [1] : []
    content {
      description = "SSH from the operator CIDRs (only with ssh_key_name)"
      from_port   = 22
      to_port     = 22
      protocol    = "tcp"
      cidr_blocks = var.ssh_cidrs
    }
  }

  # Boot needs HTTPS only: dnf repositories, ECR and its S3 layers, SSM. DNS and NTP go to the
  # VPC resolver and the Amazon Time Sync link-local address, which security groups do not filter.
  egress {
    description = "HTTPS to package repositories, ECR, S3 and SSM endpoints"
    from_port   = 443
    to_port     = 443
    protocol    = "tcp"
    cidr_blocks = ["0.0.0.0/0"]
  }

  tags = { Name = "${var.name}-instance" }
}

# ---- storage and compute ---------------------------------------------------------------------

resource "aws_ebs_volume" "data" {
  #checkov:skip=CKV_AWS_189:encrypted with the AWS-managed aws/ebs key; a customer key would add cost and a key policy for one small volume
  count             = local.single ? 1 : 0
  availability_zone = data.aws_subnet.this.availability_zone
  size              = var.data_volume_size
  type              = "gp3"
  encrypted         = true
  snapshot_id       = var.data_snapshot_id
  # Unless destroy_data_volume is set, destroy snapshots the event log before deleting the volume.
  final_snapshot = !var.destroy_data_volume

  tags = { Name = "${var.name}-data" }
}

module "user_data" {
  source = "../modules/user-data"
  count  = local.single ? 1 : 0

  # The image is read from its parameter at every `up`, so a new image changes no user data.
  image              = ""
  image_parameter    = aws_ssm_parameter.image.name
  tls_sites          = local.tls_sites
  tls_issuer         = var.domain != "" ? "acme" : "internal"
  acme_email         = var.acme_email
  ca_parameter       = var.domain != "" ? "" : local.ca_parameter_name
  log_group          = aws_cloudwatch_log_group.this.name
  metrics_namespace  = local.metrics_namespace
  data_volume_id     = aws_ebs_volume.data[0].id
  api_keys_parameter = aws_ssm_parameter.api_keys.name
  aws_region         = var.region
  registry           = local.uses_ecr ? local.registry : ""
  ready_timeout      = var.ready_timeout
  replica_url        = local.replica_url
}

resource "aws_instance" "this" {
  #checkov:skip=CKV_AWS_126:detailed (1-minute) monitoring is billed per metric; the basic 5-minute metrics suffice for one small instance
  count                  = local.single ? 1 : 0
  ami                    = data.aws_ssm_parameter.al2023_ami.insecure_value
  instance_type          = var.instance_type
  subnet_id              = local.subnet_id
  vpc_security_group_ids = [aws_security_group.instance[0].id]
  iam_instance_profile   = aws_iam_instance_profile.instance.name
  key_name               = var.ssh_key_name
  ebs_optimized          = true
  monitoring             = false

  user_data_base64            = module.user_data[0].rendered_base64gzip
  user_data_replace_on_change = true

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # 2 so that processes in containers (one hop further) can still reach IMDSv2.
    http_put_response_hop_limit = 2
    instance_metadata_tags      = "disabled"
  }

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.root_volume_size
    encrypted             = true
    delete_on_termination = true
    tags                  = merge(local.tags, { Name = "${var.name}-root" })
  }

  lifecycle {
    # A newer AMI appears every few weeks; replacing the instance for it is a deliberate act
    # (terraform apply -replace="aws_instance.this[0]"), not a side effect of the next deploy.
    ignore_changes = [ami]
  }

  tags = { Name = var.name }
}

resource "aws_volume_attachment" "data" {
  count       = local.single ? 1 : 0
  device_name = "/dev/sdf"
  volume_id   = aws_ebs_volume.data[0].id
  instance_id = aws_instance.this[0].id
  # Stop the instance before detaching so SQLite is not cut off mid-write on replacement or destroy.
  stop_instance_before_detaching = true
}
