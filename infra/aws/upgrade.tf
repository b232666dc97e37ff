# Upgrade in place. The image the instance runs is a parameter, not part of the user data, so a new
# image changes only this parameter and the instance stays. `nox -s deploy` then runs the
# document below through SSM Run Command: the boot script reads the parameter, pulls, replaces the
# app container (the data volume stays mounted), waits for the health check, and starts the
# previous image again if the new one never becomes healthy. `nox -s rollback -- aws` deploys an
# earlier tag the same way. ECR keeps the last var.ecr_keep_images images to roll back to.

resource "aws_ssm_parameter" "image" {
  #checkov:skip=CKV2_AWS_34:an image reference is not a secret; a String keeps it readable in the console
  name        = "/${var.name}/image"
  description = "Image reference the eventstate instance runs (read by its boot script at every up)."
  type        = "String"
  value       = local.image
}

resource "aws_ssm_document" "upgrade" {
  # The ha topology upgrades by rolling its Auto Scaling group to a new launch template (ha.tf).
  count           = local.single ? 1 : 0
  name            = "${var.name}-upgrade"
  document_type   = "Command"
  document_format = "YAML"
  content         = <<-DOC
    schemaVersion: "2.2"
    description: "Run the image in /${var.name}/image: replace the app container, keep the data, roll back if it never becomes healthy."
    mainSteps:
      - action: aws:runShellScript
        name: upgrade
        inputs:
          timeoutSeconds: "${var.ready_timeout + 300}"
          runCommand:
            - /usr/local/sbin/eventstate-boot up
  DOC
}

resource "aws_ecr_lifecycle_policy" "keep_last" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the last ${var.ecr_keep_images} images (what rollback can return to)"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}
