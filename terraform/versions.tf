# Terraform and provider versions, the provider settings, and the APIs every other file relies on.

terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    archive = {
      source = "hashicorp/archive"
      # 2.5 is the first release whose `excludes` understands glob patterns (functions.tf uses them).
      version = "~> 2.5"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

data "google_project" "this" {}

resource "google_project_service" "api" {
  for_each = toset([
    "artifactregistry.googleapis.com", # images the function builds produce
    "cloudbuild.googleapis.com",       # builds the functions from the source zip
    "cloudfunctions.googleapis.com",
    "cloudkms.googleapis.com",
    "cloudscheduler.googleapis.com",
    "cloudtasks.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com", # OIDC tokens for Scheduler, Pub/Sub push and Cloud Tasks
    "pubsub.googleapis.com",
    "run.googleapis.com", # 2nd gen functions are Cloud Run services
    "secretmanager.googleapis.com",
    "sqladmin.googleapis.com", # the Cloud SQL connector talks to it
    "storage.googleapis.com",
  ])

  service = each.key
  # Turning an API off on destroy would break anything else living in the project.
  disable_on_destroy = false
}
