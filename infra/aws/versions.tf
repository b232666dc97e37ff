terraform {
  # 1.9 for validations that refer to other variables.
  required_version = ">= 1.9.0, < 2.0.0"

  # State stays on the operator's machine; the deploy session passes its path at init
  # (-backend-config=path=...). Swap in an S3 backend for a team.
  backend "local" {}

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
