# Provider-free: renders the user data and checks what the instance will run.

variables {
  image              = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/eventstate:0.1.0-abc123"
  data_volume_id     = "vol-0123456789abcdef0"
  api_keys_parameter = "/eventstate/api-keys"
  aws_region         = "eu-west-1"
  registry           = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
  tls_sites          = ["203.0.113.10"]
  ca_parameter       = "/eventstate/tls-root-ca"
}

run "renders_image_volume_and_parameter" {
  command = plan

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_IMAGE='123456789012.dkr.ecr.eu-west-1.amazonaws.com/eventstate:0.1.0-abc123'")
    error_message = "The user data must carry the image reference."
  }

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_DATA_VOLUME_ID='vol-0123456789abcdef0'")
    error_message = "The user data must name the data volume it mounts."
  }

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_API_KEYS_PARAMETER='/eventstate/api-keys'")
    error_message = "The user data must name the SSM parameter, not carry the keys."
  }

  assert {
    condition     = startswith(output.rendered, "#!/usr/bin/env bash\n")
    error_message = "cloud-init runs user data as a script only when it starts with a shebang."
  }

  assert {
    condition     = strcontains(output.rendered, "xfs defaults,nofail 0 2")
    error_message = "The data volume must be mounted with nofail so a missing volume cannot block boot."
  }

  assert {
    condition     = length(output.rendered_base64gzip) < 16384
    error_message = "EC2 refuses user data over 16 KiB (sent gzip-compressed, which cloud-init unpacks)."
  }
}

run "public_image_needs_no_registry_login" {
  command = plan

  variables {
    image    = "ghcr.io/example/eventstate:0.1.0"
    registry = ""
  }

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_REGISTRY=''")
    error_message = "Without a registry the script must not try to log in."
  }
}

run "rejects_image_that_would_break_quoting" {
  command = plan

  variables {
    image = "eventstate:latest'; rm -rf /; echo '"
  }

  expect_failures = [var.image]
}

run "rejects_malformed_volume_id" {
  command = plan

  variables {
    data_volume_id = "/dev/sdf"
  }

  expect_failures = [var.data_volume_id]
}

run "internal_ca_by_default_https_only_published" {
  command = plan

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_TLS_SITES='203.0.113.10'") && strcontains(output.rendered, "EVENTSTATE_BOOT_TLS_ISSUER='internal'")
    error_message = "Without a domain the terminator serves the Elastic IP with its own CA."
  }

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_HOST_PORT='443'") && strcontains(output.rendered, "EVENTSTATE_BOOT_CA_PARAMETER='/eventstate/tls-root-ca'")
    error_message = "HTTPS is published on 443 and the root certificate goes to SSM."
  }
}

run "domain_uses_acme" {
  command = plan

  variables {
    tls_sites    = ["eventstate.example.com"]
    tls_issuer   = "acme"
    acme_email   = "ops@example.com"
    ca_parameter = ""
  }

  assert {
    condition     = strcontains(output.rendered, "EVENTSTATE_BOOT_TLS_ISSUER='acme'") && strcontains(output.rendered, "EVENTSTATE_BOOT_ACME_EMAIL='ops@example.com'")
    error_message = "A domain gets Let's Encrypt certificates."
  }
}

run "rejects_site_that_would_break_quoting" {
  command = plan

  variables {
    tls_sites = ["example.com'; reboot; '"]
  }

  expect_failures = [var.tls_sites]
}

run "rejects_unknown_issuer" {
  command = plan

  variables {
    tls_issuer = "self-signed"
  }

  expect_failures = [var.tls_issuer]
}
