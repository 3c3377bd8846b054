terraform {
  # 1.11: write-only arguments, so the database password is never stored in state.
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.88" # password_wo and secret_string_wo
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7" # ephemeral random_password
    }
  }

  # Partial configuration: envs/<env>/backend.hcl names the bucket and key
  # (terraform init -backend-config=envs/stg/backend.hcl). S3-native locking.
  backend "s3" {}
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      project     = var.project
      environment = var.environment
      managed_by  = "terraform"
    }
  }
}
