output "url" {
  description = "Base URL of the API on this machine."
  value       = "http://${var.host_address}:${var.host_port}"
  depends_on  = [terraform_data.service]
}

output "container_name" {
  description = "Name of the running container."
  value       = var.container_name
  depends_on  = [terraform_data.service]
}

output "data_dir" {
  description = "Host directory holding the event log (kept by destroy, as the AWS target keeps a snapshot)."
  value       = local.boot_environment.EVENTSTATE_BOOT_DATA_DIR
}
