# Every value lands inside single quotes in a shell script, so each is restricted to characters
# that cannot end the quoting or start an expansion.

variable "image" {
  description = "Image reference the instance pulls and runs, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/eventstate:0.1.0."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9._/:@-]*$", var.image)) && length(var.image) <= 255
    error_message = "The image must be a lower-case image reference (registry/name:tag or @digest)."
  }
}

variable "container_name" {
  description = "Name of the container on the host."
  type        = string
  default     = "eventstate"

  validation {
    condition     = can(regex("^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$", var.container_name))
    error_message = "The container name must be 1-63 letters, digits, '_', '.' or '-'."
  }
}

variable "app_port" {
  description = "Host port the service is published on (the container listens on 5000)."
  type        = number
  default     = 5000

  validation {
    condition     = var.app_port >= 1024 && var.app_port <= 65535 && floor(var.app_port) == var.app_port
    error_message = "The port must be an unprivileged port number (1024-65535)."
  }
}

variable "data_dir" {
  description = "Host directory the data volume is mounted on and handed to the container as /data."
  type        = string
  default     = "/srv/eventstate/data"

  validation {
    condition     = can(regex("^/[a-zA-Z0-9_./-]+$", var.data_dir)) && !strcontains(var.data_dir, "..")
    error_message = "The data directory must be an absolute path without '..'."
  }
}

variable "data_volume_id" {
  description = "EBS volume id (vol-...) formatted if blank and mounted on data_dir."
  type        = string

  validation {
    condition     = can(regex("^vol-[0-9a-f]{8,17}$", var.data_volume_id))
    error_message = "The data volume id must look like vol-0123456789abcdef0."
  }
}

variable "api_keys_parameter" {
  description = "Name of the SSM SecureString parameter holding the API keys, one per line."
  type        = string

  validation {
    condition     = can(regex("^/[a-zA-Z0-9_./-]+$", var.api_keys_parameter)) && length(var.api_keys_parameter) <= 1011
    error_message = "The parameter name must be an absolute SSM path such as /eventstate/api-keys."
  }
}

variable "aws_region" {
  description = "Region the instance calls SSM and ECR in."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "The region must look like eu-west-1."
  }
}

variable "registry" {
  description = "ECR registry host to log in to before pulling; empty for a public image."
  type        = string
  default     = ""

  validation {
    condition     = var.registry == "" || can(regex("^[a-z0-9.-]+(:[0-9]+)?$", var.registry))
    error_message = "The registry must be a host name (optionally with a port) or empty."
  }
}

variable "ready_timeout" {
  description = "Seconds the boot script waits for /health/ready before failing."
  type        = number
  default     = 600

  validation {
    condition     = var.ready_timeout >= 10 && var.ready_timeout <= 3600
    error_message = "The timeout must be between 10 and 3600 seconds."
  }
}

variable "replica_url" {
  description = "s3://BUCKET/PREFIX the container replicates the event log to (and restores from on an empty volume); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.replica_url == "" || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/[a-zA-Z0-9_./-]+$", var.replica_url))
    error_message = "The replica must be empty or look like s3://bucket/prefix."
  }
}
