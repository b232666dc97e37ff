variable "name" {
  description = "Name of the stack: prefixes every resource and tags it (Name, Project)."
  type        = string
  default     = "eventstate"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "The name must be 3-32 lower-case letters, digits or '-', starting with a letter."
  }
}

variable "environment" {
  description = "Environment this stack is (default, staging, ...): tagged on every resource; the deploy session also derives the name and the state key from it."
  type        = string
  default     = "default"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "The environment must be 1-16 lower-case letters, digits or '-', starting with a letter."
  }
}

variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "The region must look like eu-west-1."
  }
}

variable "instance_type" {
  description = "EC2 instance type (x86_64, since the AMI is the x86_64 Amazon Linux 2023 image)."
  type        = string
  default     = "t3.micro"

  validation {
    # Graviton families (a1, *g, *gd, *gn) would not boot the x86_64 AMI.
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9]+$", var.instance_type)) && !can(regex("^(a1|[a-z]+[0-9]+g[a-z]*)\\.", var.instance_type))
    error_message = "The instance type must be an x86_64 type such as t3.micro (no Graviton families)."
  }
}

variable "root_volume_size" {
  description = "Size in GiB of the encrypted gp3 root volume (Amazon Linux 2023 needs at least 8)."
  type        = number
  default     = 8

  validation {
    condition     = var.root_volume_size >= 8 && var.root_volume_size <= 64
    error_message = "The root volume must be 8-64 GiB."
  }
}

variable "data_volume_size" {
  description = "Size in GiB of the encrypted gp3 EBS volume that holds the event log."
  type        = number
  default     = 8

  validation {
    condition     = var.data_volume_size >= 1 && var.data_volume_size <= 1024
    error_message = "The data volume must be 1-1024 GiB."
  }
}

variable "data_snapshot_id" {
  description = "Snapshot to create the data volume from, e.g. the final snapshot a previous destroy took; null for a blank volume."
  type        = string
  default     = null

  validation {
    condition     = var.data_snapshot_id == null || can(regex("^snap-[0-9a-f]{8,17}$", var.data_snapshot_id))
    error_message = "The snapshot id must look like snap-0123456789abcdef0."
  }
}

variable "destroy_data_volume" {
  description = "Whether destroy may delete the data volume without a snapshot. By default (false) destroy takes a final snapshot of it first, so the event log outlives the stack."
  type        = bool
  default     = false
}

variable "allowed_cidrs" {
  description = "CIDR blocks allowed to reach HTTPS (443, and 80 for redirects); the deploy session passes the deploying machine's public IP as a /32."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidrs) > 0 && alltrue([for c in var.allowed_cidrs : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "Give at least one IPv4 CIDR block such as 203.0.113.7/32."
  }

  validation {
    condition     = var.allow_public_ingress || alltrue([for c in var.allowed_cidrs : !endswith(c, "/0")])
    error_message = "0.0.0.0/0 would expose the API to the whole internet; set allow_public_ingress = true if that is really meant."
  }
}

variable "allow_public_ingress" {
  description = "Whether allowed_cidrs may contain 0.0.0.0/0."
  type        = bool
  default     = false
}

variable "domain" {
  description = "DNS name to serve with a Let's Encrypt certificate and HSTS (its A record must point at the Elastic IP, which route53_zone_id does for you). Empty (the default): HTTPS on the Elastic IP with the terminator's own CA, whose root certificate is published to SSM."
  type        = string
  default     = ""

  validation {
    condition     = var.domain == "" || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z]{2,63}$", var.domain))
    error_message = "The domain must be a lower-case DNS name such as eventstate.example.com."
  }
}

variable "route53_zone_id" {
  description = "Route 53 hosted zone to create the domain's A record in; null to manage DNS elsewhere."
  type        = string
  default     = null

  validation {
    condition     = var.route53_zone_id == null || (can(regex("^Z[A-Z0-9]{1,31}$", var.route53_zone_id)) && var.domain != "")
    error_message = "The zone id must look like Z0123456789ABCDEFGHIJ, and needs a domain."
  }
}

variable "acme_email" {
  description = "Contact e-mail for the Let's Encrypt account (optional; used only with a domain)."
  type        = string
  default     = ""

  validation {
    condition     = var.acme_email == "" || can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$", var.acme_email))
    error_message = "The ACME e-mail must be an address or empty."
  }
}

variable "ssh_key_name" {
  description = "Name of an existing EC2 key pair to allow SSH with; null (the default) means no key and no port 22: use SSM Session Manager."
  type        = string
  default     = null
}

variable "ssh_cidrs" {
  description = "CIDR blocks allowed to reach port 22; used only with ssh_key_name."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.ssh_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "SSH CIDR blocks must be valid and narrower than 0.0.0.0/0."
  }

  validation {
    condition     = length(var.ssh_cidrs) == 0 || var.ssh_key_name != null
    error_message = "ssh_cidrs needs ssh_key_name: without a key there is no SSH access to open."
  }
}

variable "api_keys" {
  description = "API keys accepted by POST /update, stored as an SSM SecureString that the instance reads at boot."
  type        = list(string)
  sensitive   = true

  validation {
    condition     = length(var.api_keys) > 0 && alltrue([for k in var.api_keys : length(k) >= 16 && can(regex("^[!-~]+$", k))])
    error_message = "Give at least one API key; each must be at least 16 printable characters without spaces."
  }
}

variable "api_keys_version" {
  description = "Version of api_keys: the keys are a write-only attribute (never in state), so SSM is updated only when this number changes. The deploy session passes the keys file's modification time."
  type        = number
  default     = 1

  validation {
    condition     = var.api_keys_version >= 1 && floor(var.api_keys_version) == var.api_keys_version
    error_message = "The version must be a positive whole number."
  }
}

variable "image" {
  description = "Image reference to run. Empty (the default) runs image_tag from the ECR repository this stack creates, to which `nox -s deploy` pushes."
  type        = string
  default     = ""

  validation {
    condition     = var.image == "" || can(regex("^[a-z0-9][a-z0-9._/:@-]*$", var.image))
    error_message = "The image must be a lower-case image reference (registry/name:tag or @digest)."
  }
}

variable "image_tag" {
  description = "Tag in the stack's ECR repository to run when image is empty."
  type        = string
  default     = "latest"

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag))
    error_message = "The tag must be a valid image tag."
  }
}

variable "subnet_id" {
  description = "Subnet to launch in (it needs a route to the internet); null picks a subnet of the default VPC."
  type        = string
  default     = null
}

variable "ready_timeout" {
  description = "Seconds the boot script waits for /health/ready before it reports failure."
  type        = number
  default     = 600
}

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the containers' logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The retention must be one CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ... 3653 days)."
  }
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (AWS sends a confirmation mail first); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.alarm_email == "" || can(regex("^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$", var.alarm_email))
    error_message = "The alarm e-mail must be an address or empty."
  }
}

variable "alarm_5xx_percent" {
  description = "Share of requests answered 5xx over 5 minutes above which the 5xx alarm fires."
  type        = number
  default     = 5

  validation {
    condition     = var.alarm_5xx_percent > 0 && var.alarm_5xx_percent <= 100
    error_message = "The percentage must be in (0, 100]."
  }
}

variable "alarm_replica_lag_seconds" {
  description = "How far (seconds) the off-host replica may fall behind the log for 5 minutes before the replica-lag alarm fires."
  type        = number
  default     = 300

  validation {
    condition     = var.alarm_replica_lag_seconds >= 10 && var.alarm_replica_lag_seconds <= 86400
    error_message = "The lag must be between 10 seconds and a day."
  }
}

variable "ecr_keep_images" {
  description = "How many images the ECR repository keeps (older ones expire): the releases rollback can return to."
  type        = number
  default     = 10

  validation {
    condition     = var.ecr_keep_images >= 2 && var.ecr_keep_images <= 1000
    error_message = "Keep at least 2 images (the current one and one to roll back to)."
  }
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

# ---- replication (replica.tf) ------------------------------------------------------------------

variable "replica_bucket" {
  description = "Name of the S3 bucket the event log is replicated to; empty for <name>-replica-<account id>."
  type        = string
  default     = ""

  validation {
    condition     = var.replica_bucket == "" || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.replica_bucket))
    error_message = "The bucket name must be 3-63 lower-case letters, digits, '.' or '-'."
  }
}

variable "replica_noncurrent_days" {
  description = "Days a superseded or deleted object version of the replica is kept before the lifecycle rule expires it."
  type        = number
  default     = 90

  validation {
    condition     = var.replica_noncurrent_days >= 1 && floor(var.replica_noncurrent_days) == var.replica_noncurrent_days
    error_message = "The retention must be a whole number of days, at least 1."
  }
}

variable "destroy_replica" {
  description = "Whether destroy may delete the replica bucket with its contents. By default (false) destroy refuses to remove a bucket that holds a replica."
  type        = bool
  default     = false
}

# ---- topology (ha.tf) --------------------------------------------------------------------------

variable "topology" {
  description = "single: one instance, the log in SQLite on its EBS volume, Caddy for TLS (main.tf). ha: the log in RDS PostgreSQL Multi-AZ, an Auto Scaling group of instances in two or more zones behind an Application Load Balancer with an ACM certificate for domain (ha.tf)."
  type        = string
  default     = "single"

  validation {
    condition     = contains(["single", "ha"], var.topology)
    error_message = "The topology must be single or ha."
  }

  validation {
    # An ALB cannot serve HTTPS on its own address: ACM certificates name a domain.
    condition     = var.topology != "ha" || var.domain != ""
    error_message = "The ha topology needs a domain: the load balancer's ACM certificate names it."
  }

  validation {
    # A load balancer listener refuses a certificate that is still waiting for its validation.
    condition     = var.topology != "ha" || var.route53_zone_id != null || var.certificate_arn != null
    error_message = "The ha topology needs route53_zone_id (the stack validates its ACM certificate there) or certificate_arn (an issued certificate)."
  }
}

variable "certificate_arn" {
  description = "ha: an issued ACM certificate for domain to use instead of requesting one (needed when DNS is not in a Route 53 zone given by route53_zone_id, which lets the stack validate its own certificate)."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "The certificate ARN must look like arn:aws:acm:eu-west-1:123456789012:certificate/<id>."
  }
}

variable "ha_instances" {
  description = "ha: how many instances the Auto Scaling group keeps (at least 2, spread over the zones of subnet_ids)."
  type        = number
  default     = 2

  validation {
    condition     = var.ha_instances >= 2 && var.ha_instances <= 20 && floor(var.ha_instances) == var.ha_instances
    error_message = "The ha topology runs 2-20 instances."
  }
}

variable "subnet_ids" {
  description = "ha: subnets (in at least two availability zones, with a route to the internet) for the load balancer, the instances and the database; null uses the default VPC's."
  type        = list(string)
  default     = null

  validation {
    condition     = var.subnet_ids == null || length(coalesce(var.subnet_ids, [])) >= 2
    error_message = "Give at least two subnets, in different availability zones."
  }
}

variable "db_instance_class" {
  description = "ha: RDS instance class of the PostgreSQL database (Multi-AZ doubles its price)."
  type        = string
  default     = "db.t4g.micro"

  validation {
    condition     = can(regex("^db\\.[a-z0-9]+\\.[a-z0-9]+$", var.db_instance_class))
    error_message = "The class must look like db.t4g.micro."
  }
}

variable "db_engine_version" {
  description = "ha: PostgreSQL major version (minor versions are upgraded automatically in the maintenance window)."
  type        = string
  default     = "16"

  validation {
    condition     = contains(["14", "15", "16", "17"], var.db_engine_version)
    error_message = "The PostgreSQL version must be 14, 15, 16 or 17."
  }
}

variable "db_storage_gb" {
  description = "ha: allocated gp3 storage of the database in GiB (it grows automatically up to 5 times this)."
  type        = number
  default     = 20

  validation {
    condition     = var.db_storage_gb >= 20 && var.db_storage_gb <= 6000
    error_message = "RDS gp3 storage is 20-6000 GiB."
  }
}

variable "db_backup_retention_days" {
  description = "ha: days of automated backups (point-in-time restore) RDS keeps."
  type        = number
  default     = 7

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "Automated backups are kept 1-35 days (0 would turn them off)."
  }
}

variable "db_snapshot_identifier" {
  description = "ha: RDS snapshot to create the database from, e.g. the final snapshot a previous destroy took; null for an empty database."
  type        = string
  default     = null

  validation {
    condition     = var.db_snapshot_identifier == null || can(regex("^[A-Za-z][A-Za-z0-9:-]{0,254}$", coalesce(var.db_snapshot_identifier, "x")))
    error_message = "The snapshot identifier must be an RDS snapshot name or ARN."
  }
}

variable "deletion_protection" {
  description = "ha: deletion protection on the database and the load balancer. Leave it on for a real stack; turn it off (false) only to destroy one, e.g. a test stack: `terraform apply -var deletion_protection=false` first, then destroy."
  type        = bool
  default     = true
}
