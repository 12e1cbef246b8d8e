# What a deployer, the migrations and the front end need to know after `terraform apply`.

output "function_urls" {
  description = "URL of every function, by target name."
  value       = { for name, f in google_cloudfunctions2_function.function : name => f.url }
}

output "functions_base_url" {
  value = local.functions_base_url
}

output "api_base_url" {
  description = "The API's single base URL behind the load balancer (null without api_domain). Answers once api_domain resolves to api_ip_address and the certificate is ACTIVE."
  value       = var.api_domain == null ? null : "https://${var.api_domain}${local.api_base_path}"
}

output "api_ip_address" {
  description = "The load balancer's IPv4 address: the A record api_domain needs (null without api_domain)."
  value       = one(google_compute_global_address.api[*].address)
}

output "instance_connection_name" {
  description = "INSTANCE_CONNECTION_NAME, for migrations and the Cloud SQL Auth Proxy."
  value       = google_sql_database_instance.main.connection_name
}

output "database_name" {
  value = google_sql_database.coinfrs.name
}

output "database_user" {
  description = "Built-in user that owns the schema and runs migrations."
  value       = google_sql_user.app.name
}

output "kms_key_name" {
  value = google_kms_crypto_key.credentials.id
}

output "tasks_service_account_email" {
  value = google_service_account.tasks.email
}

output "function_service_accounts" {
  value = { for name, sa in google_service_account.function : name => sa.email }
}

output "dead_letter_subscriptions" {
  description = "Pull these to inspect messages that exhausted their retries."
  value       = [for s in google_pubsub_subscription.dead_letter : s.name]
}

output "source_bucket" {
  value = google_storage_bucket.source.name
}

output "database_instance" {
  value = google_sql_database_instance.main.name
}
