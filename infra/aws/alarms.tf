# Alarms to one SNS topic (optionally e-mailed): readiness failing, a 5xx rate, the data disk over
# 80%, the off-host replica falling behind. The instance reports Ready, DataDiskUsedPercent and
# ReplicaLagSeconds every minute (`eventstate-boot report`, run by a systemd timer the user data
# installs); the 5xx rate comes from Caddy's access log.

locals {
  metrics_namespace = "eventstate/${var.name}"
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name}-alarms"
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "email" {
  count     = var.alarm_email != "" ? 1 : 0
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "not_ready" {
  alarm_name          = "${var.name}-not-ready"
  alarm_description   = "eventstate has not been ready (GET /health/ready through its container health check) for 3 minutes, or the instance stopped reporting."
  namespace           = local.metrics_namespace
  metric_name         = "Ready"
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  # No report at all means the instance or its timer is down: that is an outage too.
  treat_missing_data = "breaching"
  alarm_actions      = [aws_sns_topic.alarms.arn]
  ok_actions         = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "disk" {
  # The ha topology keeps the log in RDS, which has its own storage autoscaling.
  count               = local.single ? 1 : 0
  alarm_name          = "${var.name}-data-disk-80"
  alarm_description   = "The data volume holding the event log is over 80% full: grow data_volume_size."
  namespace           = local.metrics_namespace
  metric_name         = "DataDiskUsedPercent"
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 80
  treat_missing_data  = "missing"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "server_errors" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than ${var.alarm_5xx_percent}% of requests answered 5xx over 5 minutes (at least 10 requests)."
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_5xx_percent
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]

  metric_query {
    id          = "rate"
    expression  = "IF(requests >= 10, 100 * errors / requests, 0)"
    label       = "5xx percent"
    return_data = true
  }

  metric_query {
    id = "errors"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "ServerErrors"
      period      = 300
      stat        = "Sum"
    }
  }

  metric_query {
    id = "requests"
    metric {
      namespace   = local.metrics_namespace
      metric_name = "Requests"
      period      = 300
      stat        = "Sum"
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "replica_lag" {
  alarm_name          = "${var.name}-replica-lag"
  alarm_description   = "The off-host replica of the event log (Litestream to ${local.replica_url}) has been more than ${var.alarm_replica_lag_seconds}s behind for 5 minutes: updates acknowledged since then would be lost with the host."
  namespace           = local.metrics_namespace
  metric_name         = "ReplicaLagSeconds"
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.alarm_replica_lag_seconds
  # The not-ready alarm already covers an instance that stopped reporting.
  treat_missing_data = "missing"
  alarm_actions      = [aws_sns_topic.alarms.arn]
  ok_actions         = [aws_sns_topic.alarms.arn]
}
