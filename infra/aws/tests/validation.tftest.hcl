# Variable validation of the AWS root module, planned against a mocked provider: nothing is created
# and no endpoint is called (the provider schema comes from the installed hashicorp/aws).

mock_provider "aws" {
  mock_data "aws_subnets" {
    defaults = {
      ids = ["subnet-0123456789abcdef0"]
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
}

variables {
  allowed_cidrs = ["203.0.113.7/32"]
  api_keys      = ["0123456789abcdef-test-key"]
}

run "defaults_plan_cleanly" {
  command = plan

  assert {
    condition     = aws_instance.this[0].instance_type == "t3.micro"
    error_message = "The default instance type is t3.micro."
  }

  assert {
    condition     = aws_instance.this[0].metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required."
  }

  assert {
    condition     = aws_ebs_volume.data[0].encrypted && aws_instance.this[0].root_block_device[0].encrypted
    error_message = "Every volume must be encrypted."
  }

  assert {
    condition     = aws_ebs_volume.data[0].final_snapshot
    error_message = "By default destroy snapshots the data volume."
  }

  assert {
    condition     = length([for rule in aws_security_group.instance[0].ingress : rule if rule.from_port == 22]) == 0
    error_message = "Without an SSH key there is no port 22."
  }
}

run "refuses_the_whole_internet" {
  command = plan

  variables {
    allowed_cidrs = ["0.0.0.0/0"]
  }

  expect_failures = [var.allowed_cidrs]
}

run "allows_the_whole_internet_when_told" {
  command = plan

  variables {
    allowed_cidrs        = ["0.0.0.0/0"]
    allow_public_ingress = true
  }
}

run "refuses_short_api_keys" {
  command = plan

  variables {
    api_keys = ["short"]
  }

  expect_failures = [var.api_keys]
}

run "refuses_graviton_types" {
  command = plan

  variables {
    instance_type = "t4g.micro"
  }

  expect_failures = [var.instance_type]
}

run "refuses_ssh_cidrs_without_a_key" {
  command = plan

  variables {
    ssh_cidrs = ["198.51.100.0/24"]
  }

  expect_failures = [var.ssh_cidrs]
}

run "destroy_data_volume_skips_the_snapshot" {
  command = plan

  variables {
    destroy_data_volume = true
  }

  assert {
    condition     = !aws_ebs_volume.data[0].final_snapshot
    error_message = "destroy_data_volume = true deletes the volume without a snapshot."
  }
}
