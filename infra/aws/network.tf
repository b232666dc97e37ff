# A stable address: the Elastic IP is allocated before the instance (the TLS terminator's
# certificate names it) and re-associated with any replacement, so the URL never changes.

resource "aws_eip" "this" {
  count  = local.single ? 1 : 0
  domain = "vpc"
  tags   = { Name = var.name }
}

resource "aws_eip_association" "this" {
  count         = local.single ? 1 : 0
  allocation_id = aws_eip.this[0].id
  instance_id   = aws_instance.this[0].id
}

resource "aws_route53_record" "this" {
  count   = local.single && var.route53_zone_id != null ? 1 : 0
  zone_id = var.route53_zone_id
  name    = var.domain
  type    = "A"
  ttl     = 300
  records = [aws_eip.this[0].public_ip]
}
