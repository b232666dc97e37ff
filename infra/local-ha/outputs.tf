output "url" {
  description = "Base URL of the load balancer on this machine (HTTPS, certificate from the local CA in `ca`)."
  value       = "https://${var.host_address}:${var.host_port}"
  depends_on  = [terraform_data.release]
}

output "ca" {
  description = "The root certificate to trust for `url` (curl --cacert)."
  value       = "${var.state_dir}/ca.crt"
  depends_on  = [terraform_data.release]
}

output "container_name" {
  description = "Prefix of the containers: NAME-db (PostgreSQL), NAME-1..N (eventstate), NAME-lb (Caddy)."
  value       = var.name
  depends_on  = [terraform_data.release]
}

output "instances" {
  description = "Names of the eventstate containers behind the load balancer."
  value       = [for i in range(1, var.instances + 1) : "${var.name}-${i}"]
  depends_on  = [terraform_data.release]
}
