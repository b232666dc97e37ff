# The topology variable and the ha topology's plan, against a mocked provider (nothing is created).
# What moto runs for real (apply, drift, destroy) is in tests/infra/test_terraform_aws_ha.py; this
# covers what moto cannot decide: refused inputs and the zone precondition.

mock_provider "aws" {
  mock_data "aws_subnets" {
    defaults = {
      ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    }
  }

  mock_data "aws_subnet" {
    defaults = {
      availability_zone = "eu-west-1a"
      vpc_id            = "vpc-0123456789abcdef0"
    }
  }

  mock_data "aws_ssm_parameter" {
    defaults = {
      insecure_value = "ami-0123456789abcdef0"
    }
  }

  mock_data "aws_partition" {
    defaults = {
      partition = "aws"
    }
  }

  mock_data "aws_iam_policy_document" {
    defaults = {
      json = "{}"
    }
  }

  mock_resource "aws_ecr_repository" {
    defaults = {
      repository_url = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/eventstate"
      arn            = "arn:aws:ecr:eu-west-1:123456789012:repository/eventstate"
    }
  }

  mock_resource "aws_ssm_parameter" {
    defaults = {
      arn = "arn:aws:ssm:eu-west-1:123456789012:parameter/eventstate/api-keys"
    }
  }

  mock_resource "aws_ebs_volume" {
    defaults = {
      id = "vol-0123456789abcdef0"
    }
  }

  mock_resource "aws_db_instance" {
    defaults = {
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0123", kms_key_id = "", secret_status = "active" }]
      address            = "es.abc.eu-west-1.rds.amazonaws.com"
      port               = 5432
    }
  }

  # Known at plan, as the real provider makes them from domain_name (the validation records'
  # for_each is keyed on them).
  mock_resource "aws_acm_certificate" {
    override_during = plan
    defaults = {
      arn = "arn:aws:acm:eu-west-1:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef"
      domain_validation_options = [{
        domain_name           = "eventstate.example.com"
        resource_record_name  = "_x1.eventstate.example.com."
        resource_record_type  = "CNAME"
        resource_record_value = "_x2.acm-validations.aws."
      }]
    }
  }

  mock_resource "aws_acm_certificate_validation" {
    defaults = {
      certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef"
    }
  }

  mock_resource "aws_lb" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/eventstate/0123456789abcdef"
    }
  }

  mock_resource "aws_lb_target_group" {
    defaults = {
      arn = "arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/eventstate-app/0123456789abcdef"
    }
  }
}

# The two default subnets lie in different zones.
override_data {
  target = data.aws_subnet.ha["subnet-0123456789abcdef0"]
  values = {
    availability_zone = "eu-west-1a"
    vpc_id            = "vpc-0123456789abcdef0"
  }
}

override_data {
  target = data.aws_subnet.ha["subnet-0123456789abcdef1"]
  values = {
    availability_zone = "eu-west-1b"
    vpc_id            = "vpc-0123456789abcdef0"
  }
}

variables {
  allowed_cidrs   = ["203.0.113.7/32"]
  api_keys        = ["0123456789abcdef-test-key"]
  topology        = "ha"
  domain          = "eventstate.example.com"
  route53_zone_id = "Z0123456789ABCDEFGHIJ"
}

run "ha_plans_the_database_the_group_and_the_load_balancer" {
  command = plan

  assert {
    condition     = aws_db_instance.ha[0].multi_az && aws_db_instance.ha[0].storage_encrypted && aws_db_instance.ha[0].manage_master_user_password
    error_message = "The database is Multi-AZ, encrypted, its password managed by RDS."
  }

  assert {
    condition     = aws_db_instance.ha[0].deletion_protection && aws_lb.ha[0].enable_deletion_protection
    error_message = "Deletion protection is on by default."
  }

  assert {
    condition     = aws_db_instance.ha[0].backup_retention_period == 7 && !aws_db_instance.ha[0].skip_final_snapshot
    error_message = "Backups are kept 7 days and destroy takes a final snapshot by default."
  }

  assert {
    condition     = contains([for p in aws_db_parameter_group.ha[0].parameter : p.name if p.value == "1"], "rds.force_ssl")
    error_message = "The database refuses connections without TLS."
  }

  assert {
    condition     = aws_launch_template.ha[0].metadata_options[0].http_tokens == "required" && aws_launch_template.ha[0].metadata_options[0].http_put_response_hop_limit == 1
    error_message = "The instances require IMDSv2, out of reach of their containers."
  }

  assert {
    condition     = aws_db_instance.ha[0].password == null
    error_message = "Terraform never holds the database password."
  }

  assert {
    condition     = aws_autoscaling_group.ha[0].min_size == 2 && length(aws_autoscaling_group.ha[0].vpc_zone_identifier) == 2
    error_message = "Two instances at least, over both subnets."
  }

  assert {
    condition     = aws_lb_target_group.ha[0].health_check[0].path == "/health/ready"
    error_message = "The load balancer asks /health/ready."
  }

  assert {
    condition     = aws_lb_listener.ha_https[0].port == 443 && aws_lb_listener.ha_http[0].default_action[0].redirect[0].protocol == "HTTPS"
    error_message = "HTTPS on 443; HTTP redirects to it."
  }

  assert {
    condition     = length(aws_instance.this) == 0 && length(aws_eip.this) == 0 && length(aws_ebs_volume.data) == 0
    error_message = "No single-instance resources in the ha topology."
  }

  assert {
    condition     = output.url == "https://eventstate.example.com"
    error_message = "The URL is the domain over HTTPS."
  }
}

run "single_plans_no_ha_resources" {
  command = plan

  variables {
    topology        = "single"
    domain          = ""
    route53_zone_id = null
  }

  assert {
    condition     = length(aws_db_instance.ha) == 0 && length(aws_lb.ha) == 0 && length(aws_autoscaling_group.ha) == 0 && length(aws_instance.this) == 1
    error_message = "The single topology has one instance and none of the ha resources."
  }
}

run "refuses_an_unknown_topology" {
  command = plan

  variables {
    topology = "cluster"
  }

  expect_failures = [var.topology]
}

run "ha_needs_a_domain" {
  command = plan

  variables {
    domain          = ""
    route53_zone_id = null
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/01234567-89ab-cdef-0123-456789abcdef"
  }

  expect_failures = [var.topology]
}

run "ha_needs_a_zone_or_an_issued_certificate" {
  command = plan

  variables {
    route53_zone_id = null
  }

  expect_failures = [var.topology]
}

run "ha_with_a_given_certificate_requests_none" {
  command = plan

  variables {
    route53_zone_id = null
    certificate_arn = "arn:aws:acm:eu-west-1:123456789012:certificate/fedcba98-7654-3210-fedc-ba9876543210"
  }

  assert {
    condition     = length(aws_acm_certificate.ha) == 0 && aws_lb_listener.ha_https[0].certificate_arn == "arn:aws:acm:eu-west-1:123456789012:certificate/fedcba98-7654-3210-fedc-ba9876543210"
    error_message = "A given certificate is used as it is."
  }
}

run "ha_needs_at_least_two_instances" {
  command = plan

  variables {
    ha_instances = 1
  }

  expect_failures = [var.ha_instances]
}

run "ha_refuses_zero_backup_days" {
  command = plan

  variables {
    db_backup_retention_days = 0
  }

  expect_failures = [var.db_backup_retention_days]
}

run "ha_refuses_one_subnet" {
  command = plan

  variables {
    subnet_ids = ["subnet-0123456789abcdef0"]
  }

  expect_failures = [var.subnet_ids]
}

run "deletion_protection_can_be_turned_off_to_destroy" {
  command = plan

  variables {
    deletion_protection = false
    destroy_data_volume = true
  }

  assert {
    condition     = !aws_db_instance.ha[0].deletion_protection && !aws_lb.ha[0].enable_deletion_protection && aws_db_instance.ha[0].skip_final_snapshot
    error_message = "deletion_protection = false lets destroy remove the database and the load balancer."
  }
}

run "ha_refuses_subnets_in_one_zone" {
  command = plan

  override_data {
    target = data.aws_subnet.ha["subnet-0123456789abcdef1"]
    values = {
      availability_zone = "eu-west-1a"
      vpc_id            = "vpc-0123456789abcdef0"
    }
  }

  expect_failures = [aws_lb.ha]
}
