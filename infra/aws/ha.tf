# The highly available topology (topology = "ha"). The log lives in RDS PostgreSQL Multi-AZ
# (encrypted, automated backups, deletion protection, its master password generated and kept by RDS
# in Secrets Manager, so it is never in Terraform state or user data). An Auto Scaling group keeps
# ha_instances instances across the zones of the subnets, behind an Application Load Balancer that
# terminates HTTPS with an ACM certificate for var.domain and redirects HTTP. Each instance reads the
# secret at boot, runs the advisory-locked, idempotent `eventstate init` (concurrent runs queue in
# PostgreSQL, so running it on every instance of a deploy is safe), then `eventstate serve`.
# Security groups chain: the allowed CIDRs reach only the load balancer, the load balancer only the
# instances' port 5000, the instances only the database's 5432.

locals {
  ha     = var.topology == "ha"
  single = !local.ha

  ha_subnet_ids = local.ha ? sort(coalesce(var.subnet_ids, data.aws_subnets.default.ids)) : []
  ha_zones      = distinct([for s in data.aws_subnet.ha : s.availability_zone])
  app_port      = 5000
  db_name       = "eventstate"
  # Given, or requested here and issued once its DNS validation record in the zone is seen.
  ha_certificate_arn = !local.ha ? "" : coalesce(var.certificate_arn, one(aws_acm_certificate_validation.ha[*].certificate_arn))
}

data "aws_subnet" "ha" {
  for_each = toset(local.ha_subnet_ids)
  id       = each.value
}

# ---- database --------------------------------------------------------------------------------

resource "aws_db_subnet_group" "ha" {
  count       = local.ha ? 1 : 0
  name        = var.name
  description = "eventstate: subnets of the PostgreSQL database"
  subnet_ids  = local.ha_subnet_ids
}

resource "aws_db_parameter_group" "ha" {
  count       = local.ha ? 1 : 0
  name        = "${var.name}-pg${var.db_engine_version}"
  family      = "postgres${var.db_engine_version}"
  description = "eventstate: TLS only, slow statements and connections logged"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  parameter {
    name  = "log_connections"
    value = "1"
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_db_instance" "ha" {
  #checkov:skip=CKV_AWS_161:the app authenticates with the RDS-managed password from Secrets Manager; IAM tokens expire every 15 minutes, which the app's connection pool cannot renew
  #checkov:skip=CKV_AWS_118:enhanced monitoring adds a role and per-instance cost; the basic CloudWatch metrics and the exported PostgreSQL log suffice for this service
  #checkov:skip=CKV_AWS_353:Performance Insights is not offered on the db.t4g.micro default; operators who choose a larger class can turn it on
  #checkov:skip=CKV_AWS_354:see CKV_AWS_353 (no Performance Insights, so no key for it)
  #checkov:skip=CKV2_AWS_30:query logging is set in the parameter group (log_min_duration_statement, log_connections); checkov looks only for log_statement, which would log every statement with its values
  count          = local.ha ? 1 : 0
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class
  multi_az       = true

  allocated_storage     = var.db_storage_gb
  max_allocated_storage = var.db_storage_gb * 5
  storage_type          = "gp3"
  storage_encrypted     = true

  db_name  = local.db_name
  username = "eventstate"
  # RDS generates the password and keeps it in a Secrets Manager secret it rotates: Terraform
  # never sees it, so it is in neither the plan nor the state.
  manage_master_user_password = true
  snapshot_identifier         = var.db_snapshot_identifier

  db_subnet_group_name   = aws_db_subnet_group.ha[0].name
  vpc_security_group_ids = [aws_security_group.db[0].id]
  parameter_group_name   = aws_db_parameter_group.ha[0].name
  publicly_accessible    = false
  port                   = 5432

  backup_retention_period         = var.db_backup_retention_days
  copy_tags_to_snapshot           = true
  deletion_protection             = var.deletion_protection
  auto_minor_version_upgrade      = true
  enabled_cloudwatch_logs_exports = ["postgresql", "upgrade"]
  # Unless destroy_data_volume is set, destroy takes a final snapshot of the log, as for the
  # single topology's data volume.
  skip_final_snapshot       = var.destroy_data_volume
  final_snapshot_identifier = "${var.name}-final"

  tags = { Name = var.name }
}

# ---- certificate -----------------------------------------------------------------------------

resource "aws_acm_certificate" "ha" {
  count             = local.ha && var.certificate_arn == null ? 1 : 0
  domain_name       = var.domain
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "ha_validation" {
  for_each = local.ha && var.certificate_arn == null && var.route53_zone_id != null ? {
    for o in aws_acm_certificate.ha[0].domain_validation_options : o.domain_name => o
  } : {}
  zone_id         = var.route53_zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "ha" {
  count                   = local.ha && var.certificate_arn == null && var.route53_zone_id != null ? 1 : 0
  certificate_arn         = aws_acm_certificate.ha[0].arn
  validation_record_fqdns = [for r in aws_route53_record.ha_validation : r.fqdn]
}

# ---- load balancer ---------------------------------------------------------------------------

resource "aws_lb" "ha" {
  #checkov:skip=CKV_AWS_91:access logs need a bucket with its own policy and lifecycle; the app logs every request to CloudWatch Logs already
  #checkov:skip=CKV2_AWS_28:a WAF web ACL costs a monthly fee per ACL and rule; ingress is limited to allowed_cidrs and POST /update needs an API key
  #checkov:skip=CKV2_AWS_20:port 80 only redirects to HTTPS (aws_lb_listener.ha_http); checkov does not follow the listener resources
  count                      = local.ha ? 1 : 0
  name                       = var.name
  load_balancer_type         = "application"
  internal                   = false
  security_groups            = [aws_security_group.alb[0].id]
  subnets                    = local.ha_subnet_ids
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  lifecycle {
    precondition {
      condition     = length(local.ha_zones) >= 2
      error_message = "The ha topology needs subnets in at least two availability zones."
    }
  }
}

resource "aws_lb_target_group" "ha" {
  #checkov:skip=CKV_AWS_378:TLS ends at the load balancer; the hop to the instances stays inside the VPC, and only the load balancer's security group reaches port 5000
  count                = local.ha ? 1 : 0
  name                 = "${var.name}-app"
  port                 = local.app_port
  protocol             = "HTTP"
  vpc_id               = data.aws_subnet.ha[local.ha_subnet_ids[0]].vpc_id
  target_type          = "instance"
  deregistration_delay = 30

  health_check {
    path                = "/health/ready"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "ha_https" {
  count             = local.ha ? 1 : 0
  load_balancer_arn = aws_lb.ha[0].arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  certificate_arn   = local.ha_certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.ha[0].arn
  }
}

resource "aws_lb_listener" "ha_http" {
  #checkov:skip=CKV_AWS_2:this listener only answers with a permanent redirect to HTTPS
  #checkov:skip=CKV_AWS_103:this listener only answers with a permanent redirect to HTTPS
  count             = local.ha ? 1 : 0
  load_balancer_arn = aws_lb.ha[0].arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"
    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }
}

resource "aws_route53_record" "ha" {
  count   = local.ha && var.route53_zone_id != null ? 1 : 0
  zone_id = var.route53_zone_id
  name    = var.domain
  type    = "A"

  alias {
    name                   = aws_lb.ha[0].dns_name
    zone_id                = aws_lb.ha[0].zone_id
    evaluate_target_health = true
  }
}

# ---- security groups -------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  count       = local.ha ? 1 : 0
  name        = "${var.name}-alb"
  description = "eventstate load balancer: HTTPS (and HTTP redirects) from the allowed CIDRs"
  vpc_id      = data.aws_subnet.ha[local.ha_subnet_ids[0]].vpc_id
  tags        = { Name = "${var.name}-alb" }
}

resource "aws_security_group" "app" {
  count       = local.ha ? 1 : 0
  name        = "${var.name}-app"
  description = "eventstate instances: the app port from the load balancer only"
  vpc_id      = data.aws_subnet.ha[local.ha_subnet_ids[0]].vpc_id
  tags        = { Name = "${var.name}-app" }
}

resource "aws_security_group" "db" {
  count       = local.ha ? 1 : 0
  name        = "${var.name}-db"
  description = "eventstate database: PostgreSQL from the instances only"
  vpc_id      = data.aws_subnet.ha[local.ha_subnet_ids[0]].vpc_id
  tags        = { Name = "${var.name}-db" }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  for_each          = local.ha ? toset(var.allowed_cidrs) : []
  security_group_id = aws_security_group.alb[0].id
  description       = "HTTPS from an allowed CIDR"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  for_each          = local.ha ? toset(var.allowed_cidrs) : []
  security_group_id = aws_security_group.alb[0].id
  description       = "HTTP (redirected to HTTPS) from an allowed CIDR"
  cidr_ipv4         = each.value
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
}

resource "aws_vpc_security_group_egress_rule" "alb_to_app" {
  count                        = local.ha ? 1 : 0
  security_group_id            = aws_security_group.alb[0].id
  description                  = "Requests and health checks to the instances"
  referenced_security_group_id = aws_security_group.app[0].id
  ip_protocol                  = "tcp"
  from_port                    = local.app_port
  to_port                      = local.app_port
}

resource "aws_vpc_security_group_ingress_rule" "app_from_alb" {
  count                        = local.ha ? 1 : 0
  security_group_id            = aws_security_group.app[0].id
  description                  = "The app port from the load balancer only"
  referenced_security_group_id = aws_security_group.alb[0].id
  ip_protocol                  = "tcp"
  from_port                    = local.app_port
  to_port                      = local.app_port
}

resource "aws_vpc_security_group_egress_rule" "app_https" {
  count             = local.ha ? 1 : 0
  security_group_id = aws_security_group.app[0].id
  description       = "HTTPS to package repositories, ECR, S3, SSM, Secrets Manager and the RDS CA bundle"
  cidr_ipv4         = "0.0.0.0/0"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
}

resource "aws_vpc_security_group_egress_rule" "app_to_db" {
  count                        = local.ha ? 1 : 0
  security_group_id            = aws_security_group.app[0].id
  description                  = "PostgreSQL to the database"
  referenced_security_group_id = aws_security_group.db[0].id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_vpc_security_group_ingress_rule" "db_from_app" {
  count                        = local.ha ? 1 : 0
  security_group_id            = aws_security_group.db[0].id
  description                  = "PostgreSQL from the instances only"
  referenced_security_group_id = aws_security_group.app[0].id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

# ---- instances -------------------------------------------------------------------------------

data "aws_iam_policy_document" "read_db_secret" {
  count = local.ha ? 1 : 0

  statement {
    sid       = "ReadDatabaseSecret"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [aws_db_instance.ha[0].master_user_secret[0].secret_arn]
  }

  statement {
    sid       = "DecryptDatabaseSecret"
    actions   = ["kms:Decrypt"]
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "read_db_secret" {
  count  = local.ha ? 1 : 0
  name   = "${var.name}-read-db-secret"
  role   = aws_iam_role.instance.id
  policy = data.aws_iam_policy_document.read_db_secret[0].json
}

resource "aws_launch_template" "ha" {
  count                  = local.ha ? 1 : 0
  name                   = "${var.name}-ha"
  description            = "eventstate instance of the ha topology: eventstate serve against RDS PostgreSQL"
  image_id               = data.aws_ssm_parameter.al2023_ami.insecure_value
  instance_type          = var.instance_type
  key_name               = var.ssh_key_name
  vpc_security_group_ids = [aws_security_group.app[0].id]
  ebs_optimized          = true
  update_default_version = true

  # The image reference is part of the user data, so a new image is a new launch template
  # version, which the group's instance refresh rolls out (never below half the instances).
  user_data = base64gzip(templatefile("${path.module}/../../bootstrap/ha-user-data.sh.tftpl", {
    image              = local.image
    image_parameter    = aws_ssm_parameter.image.name
    registry           = local.uses_ecr ? local.registry : ""
    api_keys_parameter = aws_ssm_parameter.api_keys.name
    aws_region         = var.region
    log_group          = aws_cloudwatch_log_group.this.name
    db_secret_arn      = aws_db_instance.ha[0].master_user_secret[0].secret_arn
    db_address         = aws_db_instance.ha[0].address
    db_port            = aws_db_instance.ha[0].port
    db_name            = local.db_name
  }))

  iam_instance_profile {
    name = aws_iam_instance_profile.instance.name
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
    # 1: nothing in the containers calls AWS here (the host reads the secrets, Docker ships the
    # logs), so the app container cannot reach the instance's credentials at all.
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "disabled"
  }

  monitoring {
    enabled = false
  }

  block_device_mappings {
    device_name = "/dev/xvda"
    ebs {
      volume_type           = "gp3"
      volume_size           = var.root_volume_size
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = merge(local.tags, { Name = var.name })
  }

  tag_specifications {
    resource_type = "volume"
    tags          = merge(local.tags, { Name = "${var.name}-root" })
  }
}

resource "aws_autoscaling_group" "ha" {
  count                     = local.ha ? 1 : 0
  name                      = var.name
  min_size                  = var.ha_instances
  max_size                  = var.ha_instances * 2
  desired_capacity          = var.ha_instances
  vpc_zone_identifier       = local.ha_subnet_ids
  target_group_arns         = [aws_lb_target_group.ha[0].arn]
  health_check_type         = "ELB"
  health_check_grace_period = var.ready_timeout

  launch_template {
    id      = aws_launch_template.ha[0].id
    version = aws_launch_template.ha[0].latest_version
  }

  instance_refresh {
    strategy = "Rolling"
    preferences {
      min_healthy_percentage = 50
      # A refresh whose new instances never pass the load balancer's health check goes back to
      # the previous launch template version (the previous image).
      auto_rollback = true
    }
  }

  dynamic "tag" {
    for_each = merge(local.tags, { Name = var.name })
    content {
      key                 = tag.key
      value               = tag.value
      propagate_at_launch = false
    }
  }

  depends_on = [aws_iam_role_policy.read_db_secret, aws_iam_role_policy.instance]
}
