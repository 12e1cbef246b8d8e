# Inputs of the deployment; README.md shows a terraform.tfvars that sets them.

variable "project_id" {
  description = "GCP project to deploy into. One project per environment: topic and queue names are fixed by shared/messaging/topology.py."
  type        = string
}

variable "region" {
  description = "Region of the functions, Cloud SQL, queues, scheduler and key ring."
  type        = string
  default     = "europe-west1"
}

variable "environment" {
  description = "Short name of this deployment (prod, staging...): names the database instance and key ring and labels every resource. The functions always run with ENVIRONMENT=production."
  type        = string
  default     = "prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,15}$", var.environment))
    error_message = "environment must be lowercase letters, digits and '-', at most 16 characters."
  }
}

variable "api_domain" {
  description = "Host name the API is served on, e.g. \"api.coinfrs.example\": a global HTTPS load balancer (loadbalancer.tf) answers https://<api_domain>/api/v1 with a Google-managed certificate. null: no load balancer, each HTTP function answers only at its own URL."
  type        = string
  default     = null

  validation {
    condition     = var.api_domain == null || can(regex("^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$", var.api_domain))
    error_message = "api_domain must be a lowercase host name such as api.coinfrs.example (no scheme, port, path, wildcard or trailing dot)."
  }
}

variable "api_ingress" {
  description = "Ingress of the HTTP functions. ALLOW_ALL (default) while clients still call the functions' own URLs; switch to ALLOW_INTERNAL_AND_GCLB once https://<api_domain>/api/v1 serves, so the load balancer is the only way in from the internet (needs api_domain)."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_AND_GCLB"], var.api_ingress)
    error_message = "api_ingress must be ALLOW_ALL or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "db_tier" {
  description = "Cloud SQL machine tier (ENTERPRISE edition)."
  type        = string
  default     = "db-custom-1-3840"
}

variable "db_availability_type" {
  description = "ZONAL, or REGIONAL for a standby in a second zone."
  type        = string
  default     = "ZONAL"
}

variable "db_deletion_protection" {
  description = "Refuse to delete the Cloud SQL instance (both in Terraform and in GCP). Turn off only to tear an environment down on purpose."
  type        = bool
  default     = true
}

variable "db_private_network" {
  description = "Self link of a VPC that has private services access: the instance gets only a private IP there. null: public IP reachable only through the Cloud SQL connector (no authorized networks)."
  type        = string
  default     = null
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector the functions use to reach a private-IP instance (projects/P/locations/R/connectors/NAME). Required with db_private_network."
  type        = string
  default     = null
}

variable "db_iam_auth" {
  description = "Functions sign in to PostgreSQL as their own service account (IAM database authentication) instead of the built-in user with DB_PASS."
  type        = bool
  default     = false
}

variable "cors_origins" {
  description = "Browser origins allowed to call the API (the front end's address)."
  type        = list(string)
  default     = []
}

variable "google_client_id" {
  description = "OAuth 2.0 client id for Google sign-in; its secret goes to the GOOGLE_CLIENT_SECRET secret."
  type        = string
  default     = ""
}

variable "oauth_redirect_uris" {
  description = "Allow-listed redirect URIs of the Google sign-in flow."
  type        = list(string)
  default     = []
}

variable "smtp_host" {
  description = "SMTP relay that sends one-time codes and reconciliation alerts."
  type        = string
  default     = ""
}

variable "smtp_port" {
  type    = number
  default = 587
}

variable "smtp_from" {
  description = "From address of outgoing mail, e.g. \"Coinfrs <no-reply@example.com>\"."
  type        = string
  default     = ""
}

variable "smtp_username" {
  description = "SMTP login; its password goes to the SMTP_PASSWORD secret."
  type        = string
  default     = ""
}

variable "smtp_starttls" {
  type    = bool
  default = true
}

variable "log_level" {
  type    = string
  default = "INFO"
}

variable "disabled_secrets" {
  description = "Optional secrets this deployment does not use, so no function mounts them (a mounted secret without a version stops the deploy)."
  type        = set(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.disabled_secrets : contains(["GOOGLE_CLIENT_SECRET", "SENTRY_DSN", "SMTP_PASSWORD"], s)])
    error_message = "Only GOOGLE_CLIENT_SECRET, SENTRY_DSN and SMTP_PASSWORD are optional."
  }
}
