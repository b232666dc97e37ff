# The `local-ha` target: several eventstate instances on one PostgreSQL behind a load balancer, on
# this machine. Runs bootstrap/eventstate-ha.sh (PostgreSQL container, `eventstate init`, INSTANCES
# eventstate containers, Caddy load balancing over HTTPS); destroy runs it with `down`, which removes
# the containers, their network and the database volume.
#
# As in the `local` target, `service` owns the teardown and `release` runs `up` whenever the image
# or the parameters change (`up` replaces only what runs another configuration).

locals {
  script = abspath("${path.module}/../../bootstrap/eventstate-ha.sh")

  environment = {
    EVENTSTATE_HA_IMAGE          = var.image
    EVENTSTATE_HA_POSTGRES_IMAGE = var.postgres_image
    EVENTSTATE_HA_NAME           = var.name
    EVENTSTATE_HA_INSTANCES      = tostring(var.instances)
    EVENTSTATE_HA_HOST_ADDRESS   = var.host_address
    EVENTSTATE_HA_HOST_PORT      = tostring(var.host_port)
    EVENTSTATE_HA_STATE_DIR      = var.state_dir
    EVENTSTATE_HA_API_KEYS_FILE  = var.api_keys_file
    EVENTSTATE_HA_READY_TIMEOUT  = tostring(var.ready_timeout)
  }
}

resource "terraform_data" "service" {
  # What identifies the deployment (names, ports, directories); the images are not part of it.
  triggers_replace = {
    for k, v in local.environment : k => v if !contains(["EVENTSTATE_HA_IMAGE", "EVENTSTATE_HA_POSTGRES_IMAGE"], k)
  }

  # Destroy-time provisioners may refer only to self, so the teardown needs are kept in input.
  input = {
    script      = local.script
    environment = local.environment
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "bash '${self.input.script}' down"
    environment = self.input.environment
  }
}

resource "terraform_data" "release" {
  triggers_replace = {
    service  = terraform_data.service.id
    image_id = var.image_id
    image    = var.image
    postgres = var.postgres_image
  }

  provisioner "local-exec" {
    command     = "bash '${local.script}' up"
    environment = local.environment
  }
}
