output "rendered" {
  description = "The user data script, ready for aws_instance.user_data."
  value       = local.user_data
}

output "rendered_base64gzip" {
  description = "The user data gzip-compressed and base64-encoded, for aws_instance.user_data_base64: the boot script alone is near EC2's 16 KiB limit, and cloud-init unpacks gzip."
  value       = base64gzip(local.user_data)
}

output "boot_script_path" {
  description = "Absolute path of the boot script the user data embeds (the local target runs it directly)."
  value       = abspath("${local.bootstrap_dir}/eventstate-boot.sh")
}
