# The `local` target: runs bootstrap/eventstate-boot.sh on this machine with local parameters (the
# locally built image, a data directory under the target's state, HTTPS on loopback only), the way
# the EC2 instance runs it from user data. Destroy runs the same script with `down`.
#
# Two resources, so that a new image upgrades in place: `release` runs `up` whenever the image or
# the parameters change (the script replaces the app container and rolls back to the previous image
# if the new one never becomes healthy); `service` owns the teardown and runs `down` only on destroy.

locals {
  boot_script = abspath("${path.module}/../../bootstrap/eventstate-boot.sh")

  boot_environment = {
    EVENTSTATE_BOOT_IMAGE          = var.image
    EVENTSTATE_BOOT_CONTAINER_NAME = var.container_name
    EVENTSTATE_BOOT_HOST_ADDRESS   = var.host_address
    EVENTSTATE_BOOT_HOST_PORT      = tostring(var.host_port)
    EVENTSTATE_BOOT_TLS_SITES      = join(" ", distinct([var.host_address, "localhost"]))
    EVENTSTATE_BOOT_TLS_ISSUER     = "internal"
    EVENTSTATE_BOOT_TLS_DIR        = "${var.state_dir}/tls"
    EVENTSTATE_BOOT_CA_FILE        = "${var.state_dir}/ca.crt"
    EVENTSTATE_BOOT_RELEASES_FILE  = "${var.state_dir}/releases"
    EVENTSTATE_BOOT_DATA_DIR       = "${var.state_dir}/data"
    EVENTSTATE_BOOT_API_KEYS_FILE  = var.api_keys_file
    EVENTSTATE_BOOT_INSTALL_DOCKER = "0"
    EVENTSTATE_BOOT_PULL           = "0"
    EVENTSTATE_BOOT_LOG_FILE       = "${var.state_dir}/eventstate-boot.log"
    EVENTSTATE_BOOT_READY_TIMEOUT  = tostring(var.ready_timeout)
    # A failed first create taints the resource and Terraform then runs no destroy provisioner.
    EVENTSTATE_BOOT_REMOVE_ON_FAILURE = "1"
  }
}

resource "terraform_data" "service" {
  # What identifies the deployment (names, ports, directories); the image is not part of it.
  triggers_replace = {
    for k, v in local.boot_environment : k => v if k != "EVENTSTATE_BOOT_IMAGE"
  }

  # Destroy-time provisioners may refer only to self, so the teardown needs are kept in input.
  input = {
    boot_script = local.boot_script
    environment = local.boot_environment
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "bash '${self.input.boot_script}' down"
    environment = self.input.environment
  }
}

resource "terraform_data" "release" {
  triggers_replace = {
    service  = terraform_data.service.id
    image_id = var.image_id
    image    = var.image
  }

  provisioner "local-exec" {
    command     = "bash '${local.boot_script}' up"
    environment = local.boot_environment
  }
}
