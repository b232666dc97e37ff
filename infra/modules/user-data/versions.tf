terraform {
  # 1.9 for validations that refer to other variables.
  required_version = ">= 1.9.0, < 2.0.0"
}
