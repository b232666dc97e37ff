# Renders the EC2 user data: bootstrap/eventstate-boot.sh plus the parameters it runs with.
# No resources and no provider, so `terraform test` exercises it anywhere.

locals {
  bootstrap_dir = "${path.module}/../../../bootstrap"

  user_data = templatefile("${local.bootstrap_dir}/user-data.sh.tftpl", {
    image              = var.image
    image_parameter    = var.image_parameter
    container_name     = var.container_name
    tls_sites          = join(" ", var.tls_sites)
    tls_issuer         = var.tls_issuer
    acme_email         = var.acme_email
    ca_parameter       = var.ca_parameter
    log_group          = var.log_group
    metrics_namespace  = var.metrics_namespace
    data_dir           = var.data_dir
    data_volume_id     = var.data_volume_id
    api_keys_parameter = var.api_keys_parameter
    aws_region         = var.aws_region
    registry           = var.registry
    ready_timeout      = var.ready_timeout
    replica_url        = var.replica_url
    boot_script        = trimsuffix(file("${local.bootstrap_dir}/eventstate-boot.sh"), "\n")
  })
}
