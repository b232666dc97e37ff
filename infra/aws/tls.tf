# TLS by default. Caddy, run from the eventstate image as a second container on the instance
# (bootstrap/eventstate-boot.sh), terminates HTTPS on 443 and proxies to the app over a private
# Docker network. With `domain`, Let's Encrypt issues the certificate and HSTS is sent; without one,
# Caddy's own CA issues a certificate for the Elastic IP, and the instance publishes that CA's root
# certificate to the parameter below so clients can trust it (`nox -s deploy` saves it and prints
# the `curl --cacert` command).

locals {
  tls_sites         = var.domain != "" ? [var.domain] : [aws_eip.this[0].public_ip]
  ca_parameter_name = "/${var.name}/tls-root-ca"
}

resource "aws_ssm_parameter" "tls_root_ca" {
  #checkov:skip=CKV2_AWS_34:a root certificate is public by nature (clients must be able to read it to trust the server); encrypting it would protect nothing
  count       = local.single && var.domain == "" ? 1 : 0
  name        = local.ca_parameter_name
  description = "Root certificate of the eventstate TLS terminator's internal CA (public; written by the instance)."
  type        = "String"
  # A placeholder until the instance's first boot writes the certificate; Terraform leaves it then.
  value = "pending: the instance writes the root certificate here once Caddy has created its CA"

  lifecycle {
    ignore_changes = [value]
  }
}
