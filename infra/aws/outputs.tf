output "public_ip" {
  description = "Public IPv4 address of the instance."
  value       = aws_instance.this.public_ip
}

output "url" {
  description = "Base URL of the API."
  value       = "http://${aws_instance.this.public_ip}:${var.app_port}"
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
