terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  # No provider: the target is this machine, driven by terraform_data and local-exec. The deploy
  # session passes the state path at init (-backend-config=path=...).
  backend "local" {}
}
