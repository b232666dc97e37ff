output "public_ip" {
  description = "The Elastic IP: the stack's address, which survives instance replacement."
  value       = aws_eip.this.public_ip
}

output "url" {
  description = "Base URL of the API (HTTPS only)."
  value       = "https://${local.tls_sites[0]}"
}

output "instance_id" {
  description = "EC2 instance id (for `aws ssm start-session --target`)."
  value       = aws_instance.this.id
}

output "data_volume_id" {
  description = "EBS volume id holding the event log."
  value       = aws_ebs_volume.data.id
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
  value       = var.domain == "" ? aws_ssm_parameter.tls_root_ca[0].name : ""
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
  value       = aws_ssm_document.upgrade.name
}

output "image_parameter" {
  description = "SSM parameter holding the image reference the instance runs."
  value       = aws_ssm_parameter.image.name
}

output "image_tag" {
  description = "Tag of the image in the stack's ECR repository (empty when image is given)."
  value       = var.image == "" ? var.image_tag : ""
}
