variable "image" {
  description = "Locally built image to run (what `nox -s image` tags)."
  type        = string
  default     = "eventstate:latest"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/:@-]*$", var.image))
    error_message = "The image must be a lower-case image reference."
  }
}

variable "image_id" {
  description = "Content id (sha256:...) of the image; a rebuilt image changes it and so replaces the instances."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.image_id))
    error_message = "The image id must be sha256:<64 hex digits> as `docker image inspect` prints it."
  }
}

variable "postgres_image" {
  description = "Locally built image with Debian's PostgreSQL 15 (what `bash .ci/docker.sh` tags)."
  type        = string
  default     = "eventstate-postgres:bookworm"

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/:@-]*$", var.postgres_image))
    error_message = "The PostgreSQL image must be a lower-case image reference."
  }
}

variable "instances" {
  description = "How many eventstate containers run behind the load balancer."
  type        = number
  default     = 2

  validation {
    condition     = var.instances >= 1 && var.instances <= 9
    error_message = "Between 1 and 9 instances."
  }
}

variable "name" {
  description = "Prefix of every container, the network and the volume on this machine."
  type        = string
  default     = "eventstate-ha"

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,50}$", var.name))
    error_message = "The name must be 1-51 letters, digits, '_', '.' or '-'."
  }
}

variable "host_address" {
  description = "Address the HTTPS port binds to; loopback by default so nothing outside this machine reaches it."
  type        = string
  default     = "127.0.0.1"

  validation {
    condition     = can(cidrhost("${var.host_address}/32", 0))
    error_message = "The host address must be an IPv4 address."
  }
}

variable "host_port" {
  description = "Port on this machine the load balancer publishes HTTPS on (no instance port is published)."
  type        = number
  default     = 5443

  validation {
    condition     = var.host_port >= 1024 && var.host_port <= 65535
    error_message = "The port must be an unprivileged port number (1024-65535)."
  }
}

variable "state_dir" {
  description = "Absolute directory of this target's state: the database password, the CA and the log live under it."
  type        = string

  validation {
    condition     = startswith(var.state_dir, "/") && !strcontains(var.state_dir, "..")
    error_message = "The state directory must be an absolute path without '..'."
  }
}

variable "api_keys_file" {
  description = "Absolute path of the file holding the API keys, one per line (the deploy session creates it)."
  type        = string

  validation {
    condition     = startswith(var.api_keys_file, "/")
    error_message = "The API keys file must be an absolute path."
  }
}

variable "ready_timeout" {
  description = "Seconds the boot script waits for the app to be healthy."
  type        = number
  default     = 120

  validation {
    condition     = var.ready_timeout >= 10 && var.ready_timeout <= 3600
    error_message = "The timeout must be between 10 and 3600 seconds."
  }
}
