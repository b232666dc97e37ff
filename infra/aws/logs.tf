# Container logs in CloudWatch Logs: Docker's awslogs driver ships the app's and Caddy's output
# (one stream each) to this group. Caddy's JSON access log also feeds the 5xx alarm (alarms.tf).

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest already; a customer key would add cost and a key policy, and the logs carry no secrets (API keys are never logged)
  #checkov:skip=CKV_AWS_338:retention is the operator's choice (var.log_retention_days, 30 days by default): a year of logs costs more than this small service warrants
  name              = "/eventstate/${var.name}"
  retention_in_days = var.log_retention_days
}

resource "aws_cloudwatch_log_metric_filter" "requests" {
  name           = "${var.name}-requests"
  log_group_name = aws_cloudwatch_log_group.this.name
  pattern        = "{ $.logger = \"http.log.access*\" }"

  metric_transformation {
    name          = "Requests"
    namespace     = local.metrics_namespace
    value         = "1"
    default_value = "0"
    dimensions    = {}
  }
}

resource "aws_cloudwatch_log_metric_filter" "server_errors" {
  name           = "${var.name}-5xx"
  log_group_name = aws_cloudwatch_log_group.this.name
  pattern        = "{ $.logger = \"http.log.access*\" && $.status >= 500 }"

  metric_transformation {
    name          = "ServerErrors"
    namespace     = local.metrics_namespace
    value         = "1"
    default_value = "0"
    dimensions    = {}
  }
}
