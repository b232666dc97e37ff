output "public_ip" {
  description = "The Elastic IP: the stack's address, which survives instance replacement."
  value       = local.single ? aws_eip.this[0].public_ip : ""
}

output "url" {
  description = "Base URL of the API (HTTPS only)."
  value       = local.ha ? "https://${var.domain}" : "https://${local.tls_sites[0]}"
}

output "instance_id" {
  description = "EC2 instance id (for `aws ssm start-session --target`)."
  value       = local.single ? aws_instance.this[0].id : ""
}

output "data_volume_id" {
  description = "EBS volume id holding the event log."
  value       = local.single ? aws_ebs_volume.data[0].id : ""
}

output "ecr_repository_url" {
  description = "URL of the ECR repository this stack created for the image."
  value       = aws_ecr_repository.this.repository_url
}

output "image" {
  description = "Image reference the instance runs."
  value       = local.image
}

output "api_keys_parameter" {
  description = "Name of the SSM SecureString holding the API keys."
  value       = aws_ssm_parameter.api_keys.name
}

output "region" {
  description = "Region the stack is deployed in."
  value       = var.region
}

output "replica_url" {
  description = "Where the event log is replicated (eventstate restore --replica URL)."
  value       = local.replica_url
}

output "replica_bucket" {
  description = "S3 bucket of the replica."
  value       = aws_s3_bucket.replica.id
}

output "tls_root_ca_parameter" {
  description = "SSM parameter holding the root certificate to trust for url (empty with a domain: Let's Encrypt is trusted already)."
  value       = local.single && var.domain == "" ? aws_ssm_parameter.tls_root_ca[0].name : ""
}

output "log_group" {
  description = "CloudWatch Logs group with the app's and the TLS terminator's output."
  value       = aws_cloudwatch_log_group.this.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify (subscribe more endpoints to it as needed)."
  value       = aws_sns_topic.alarms.arn
}

output "upgrade_document" {
  description = "SSM Command document that replaces the container with the image in image_parameter."
  value       = local.single ? aws_ssm_document.upgrade[0].name : ""
}

output "image_parameter" {
  description = "SSM parameter holding the image reference the instance runs."
  value       = aws_ssm_parameter.image.name
}

output "image_tag" {
  description = "Tag of the image in the stack's ECR repository (empty when image is given)."
  value       = var.image == "" ? var.image_tag : ""
}

# ---- ha topology (empty with topology = "single") ----------------------------------------------

output "topology" {
  description = "single or ha."
  value       = var.topology
}

output "load_balancer_dns_name" {
  description = "ha: DNS name of the load balancer; point the domain at it (an alias record, which route53_zone_id makes for you)."
  value       = local.ha ? aws_lb.ha[0].dns_name : ""
}

output "target_group_arn" {
  description = "ha: target group the Auto Scaling group registers its instances in."
  value       = local.ha ? aws_lb_target_group.ha[0].arn : ""
}

output "autoscaling_group" {
  description = "ha: name of the Auto Scaling group (aws autoscaling start-instance-refresh rolls it)."
  value       = local.ha ? aws_autoscaling_group.ha[0].name : ""
}

output "database_endpoint" {
  description = "ha: host:port of the RDS PostgreSQL database (reachable from the instances only)."
  value       = local.ha ? aws_db_instance.ha[0].endpoint : ""
}

output "database_secret_arn" {
  description = "ha: Secrets Manager secret RDS keeps the database's master user and password in."
  value       = local.ha ? aws_db_instance.ha[0].master_user_secret[0].secret_arn : ""
}
