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
  description = "Content id (sha256:...) of the image; a rebuilt image changes it and so replaces the container."
  type        = string

  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.image_id))
    error_message = "The image id must be sha256:<64 hex digits> as `docker image inspect` prints it."
  }
}

variable "container_name" {
  description = "Name of the container on this machine."
  type        = string
  default     = "eventstate-local"

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$", var.container_name))
    error_message = "The container name must be 1-63 letters, digits, '_', '.' or '-'."
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
  description = "Port on this machine HTTPS is published on (the app port itself is never published)."
  type        = number
  default     = 5000

  validation {
    condition     = var.host_port >= 1024 && var.host_port <= 65535
    error_message = "The port must be an unprivileged port number (1024-65535)."
  }
}

variable "state_dir" {
  description = "Absolute directory of this target's state: the data directory and the boot log live under it."
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
