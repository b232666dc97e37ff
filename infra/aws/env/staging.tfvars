# Variables of the `staging` environment (`nox -s deploy -- aws --env staging`). The deploy session
# sets name, environment, region, allowed_cidrs and the API keys itself; anything else of
# infra/aws/variables.tf may be set here. Add env/<name>.tfvars for another environment.
instance_type    = "t3.micro"
data_volume_size = 8
tags = {
  CostCenter = "eventstate-staging"
}
