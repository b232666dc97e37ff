terraform {
  # 1.10 for the S3 backend's lock file, 1.11 for write-only attributes (the API keys parameter).
  required_version = ">= 1.11.0, < 2.0.0"

  # Shared state: an S3 bucket (versioned, encrypted; `nox -s state -- aws` or the first deploy
  # creates it) with one key per environment, locked by a lock file next to the state (Terraform
  # >= 1.10: use_lockfile), so a second operator's apply waits or is refused. The deploy session
  # passes bucket, key, region, encrypt and use_lockfile at init.
  backend "s3" {}

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "= 5.100.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = local.tags
  }
}
