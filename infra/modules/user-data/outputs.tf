output "rendered" {
  description = "The user data script, ready for aws_instance.user_data."
  value       = local.user_data
}

output "boot_script_path" {
  description = "Absolute path of the boot script the user data embeds (the local target runs it directly)."
  value       = abspath("${local.bootstrap_dir}/eventstate-boot.sh")
}
