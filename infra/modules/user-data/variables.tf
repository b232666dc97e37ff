# Every value lands inside single quotes in a shell script, so each is restricted to characters
# that cannot end the quoting or start an expansion.

variable "image" {
  description = "Image reference the instance pulls and runs, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/eventstate:0.1.0."
  type        = string

  validation {
    condition     = (var.image == "" || can(regex("^[a-z0-9][a-z0-9._/:@-]*$", var.image))) && length(var.image) <= 255
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

variable "tls_sites" {
  description = "Names or addresses the TLS terminator serves: the domain, or the Elastic IP without one."
  type        = list(string)

  validation {
    condition     = length(var.tls_sites) > 0 && alltrue([for s in var.tls_sites : can(regex("^[a-z0-9][a-z0-9.-]*[a-z0-9]$", s))])
    error_message = "Give at least one lower-case host name or IPv4 address."
  }
}

variable "tls_issuer" {
  description = "internal (the terminator's own CA, published to ca_parameter) or acme (Let's Encrypt, with HSTS)."
  type        = string
  default     = "internal"

  validation {
    condition     = contains(["internal", "acme"], var.tls_issuer)
    error_message = "The issuer must be internal or acme."
  }
}

variable "acme_email" {
  description = "Contact address for the ACME account (optional)."
  type        = string
  default     = ""

  validation {
    condition     = var.acme_email == "" || can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$", var.acme_email))
    error_message = "The ACME e-mail must be an address or empty."
  }
}

variable "ca_parameter" {
  description = "SSM parameter the internal root certificate is published to (empty with acme)."
  type        = string
  default     = ""

  validation {
    condition     = var.ca_parameter == "" || can(regex("^/[A-Za-z0-9_./-]+$", var.ca_parameter))
    error_message = "The parameter name must be a path such as /eventstate/tls-root-ca."
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

variable "log_group" {
  description = "CloudWatch Logs group the containers log to (awslogs driver); empty for Docker's default."
  type        = string
  default     = ""

  validation {
    condition     = var.log_group == "" || can(regex("^[A-Za-z0-9_./#-]+$", var.log_group))
    error_message = "The log group name may hold letters, digits and _ . / # - only."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace the instance reports Ready and DataDiskUsedPercent to every minute; empty for no reports."
  type        = string
  default     = ""

  validation {
    condition     = var.metrics_namespace == "" || can(regex("^[A-Za-z0-9_./#-]+$", var.metrics_namespace))
    error_message = "The namespace may hold letters, digits and _ . / # - only."
  }
}

variable "image_parameter" {
  description = "SSM parameter holding the image reference, read at every `up`: a new image is then a parameter change and an SSM Run Command, not new user data (which would replace the instance). Empty to use image."
  type        = string
  default     = ""

  validation {
    condition     = var.image_parameter == "" || can(regex("^/[A-Za-z0-9_./-]+$", var.image_parameter))
    error_message = "The parameter name must be a path such as /eventstate/image."
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
