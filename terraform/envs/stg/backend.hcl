# terraform init -backend-config=envs/stg/backend.hcl  (state bucket: see terraform/bootstrap)
bucket       = "studperf-terraform-state-ACCOUNT_ID"
key          = "studperf/stg/terraform.tfstate"
region       = "eu-west-1"
encrypt      = true
use_lockfile = true
