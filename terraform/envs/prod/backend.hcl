# terraform init -backend-config=envs/prod/backend.hcl  (state bucket: see terraform/bootstrap)
bucket       = "studperf-terraform-state-ACCOUNT_ID"
key          = "studperf/prod/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
use_lockfile = true
