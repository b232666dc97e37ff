output "url" {
  description = "Base URL of the API on this machine (HTTPS, certificate from the local CA in `ca`)."
  value       = "https://${var.host_address}:${var.host_port}"
  depends_on  = [terraform_data.release]
}

output "ca" {
  description = "The root certificate to trust for `url` (curl --cacert)."
  value       = local.boot_environment.EVENTSTATE_BOOT_CA_FILE
  depends_on  = [terraform_data.release]
}

output "container_name" {
  description = "Name of the running app container (the TLS terminator is NAME-tls)."
  value       = var.container_name
  depends_on  = [terraform_data.release]
}

output "releases_file" {
  description = "One line per image that became ready: time, image id, reference (what rollback reads)."
  value       = local.boot_environment.EVENTSTATE_BOOT_RELEASES_FILE
}

output "data_dir" {
  description = "Host directory holding the event log (kept by destroy, as the AWS target keeps a snapshot)."
  value       = local.boot_environment.EVENTSTATE_BOOT_DATA_DIR
}
