# The `local` target: runs bootstrap/eventstate-boot.sh on this machine with local parameters (the
# locally built image, a data directory under the target's state, loopback only), the way the EC2
# instance runs it from user data. Destroy runs the same script with `down`.

locals {
  boot_script = abspath("${path.module}/../../bootstrap/eventstate-boot.sh")

  boot_environment = {
    EVENTSTATE_BOOT_IMAGE          = var.image
    EVENTSTATE_BOOT_CONTAINER_NAME = var.container_name
    EVENTSTATE_BOOT_HOST_ADDRESS   = var.host_address
    EVENTSTATE_BOOT_HOST_PORT      = tostring(var.host_port)
    EVENTSTATE_BOOT_DATA_DIR       = "${var.state_dir}/data"
    EVENTSTATE_BOOT_API_KEYS_FILE  = var.api_keys_file
    EVENTSTATE_BOOT_INSTALL_DOCKER = "0"
    EVENTSTATE_BOOT_PULL           = "0"
    EVENTSTATE_BOOT_LOG_FILE       = "${var.state_dir}/eventstate-boot.log"
    EVENTSTATE_BOOT_READY_TIMEOUT  = tostring(var.ready_timeout)
    # A failed create taints the resource and Terraform then runs no destroy provisioner for it.
    EVENTSTATE_BOOT_REMOVE_ON_FAILURE = "1"
  }
}

resource "terraform_data" "service" {
  # Any change of image content or parameters replaces the service: down, then up again.
  triggers_replace = {
    image_id    = var.image_id
    environment = local.boot_environment
  }

  # Destroy-time provisioners may refer only to self, so the teardown needs are kept in input.
  input = {
    boot_script = local.boot_script
    environment = local.boot_environment
  }

  provisioner "local-exec" {
    command     = "bash '${self.input.boot_script}' up"
    environment = self.input.environment
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "bash '${self.input.boot_script}' down"
    environment = self.input.environment
  }
}
