# The global external Application Load Balancer: one HTTPS host, https://<api_domain>/api/v1, in
# front of the HTTP functions, each route group going to the function that owns it
# (local.api_route_groups in functions.tf). Nothing here exists while var.api_domain is null.

locals {
  # CONTRACT.md base path. Requests reach the function with the full path; its router strips it.
  api_base_path = "/api/v1"

  # The HTTP functions behind the load balancer, each with its own NEG and backend service.
  load_balanced = {
    for name, f in local.functions : name => f if f.kind == "http" && var.api_domain != null
  }

  # Where requests that no route group claims go. A serverless NEG cannot be replaced by a fixed
  # 404 backend, so an HTTP function takes them: its router answers 404 NOT_FOUND in the usual
  # envelope for any path it does not serve.
  api_default_function = "health"
}

resource "google_project_service" "compute" {
  count = var.api_domain == null ? 0 : 1

  service            = "compute.googleapis.com"
  disable_on_destroy = false
}

# One serverless NEG per HTTP function, pointing at the Cloud Run service behind it.
resource "google_compute_region_network_endpoint_group" "api" {
  for_each = local.load_balanced

  name                  = "coinfrs-${replace(each.key, "_", "-")}"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  cloud_run {
    # 2nd gen functions are served by a Cloud Run service whose name may differ from the function's.
    service = google_cloudfunctions2_function.function[each.key].service_config[0].service
  }

  depends_on = [google_project_service.compute]
}

# Serverless backends take no health check, port or timeout: the function's own timeout applies.
resource "google_compute_backend_service" "api" {
  for_each = local.load_balanced

  name                  = "coinfrs-${replace(each.key, "_", "-")}"
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.api[each.key].id
  }
}

resource "google_compute_url_map" "api" {
  count = var.api_domain == null ? 0 : 1

  name            = "coinfrs-api"
  default_service = google_compute_backend_service.api[local.api_default_function].id

  host_rule {
    hosts        = [var.api_domain]
    path_matcher = "api"
  }

  path_matcher {
    name            = "api"
    default_service = google_compute_backend_service.api[local.api_default_function].id

    # /api/v1/<segment> and everything under it go to the function that owns <segment>.
    dynamic "path_rule" {
      for_each = local.api_route_groups
      content {
        paths   = ["${local.api_base_path}/${path_rule.key}", "${local.api_base_path}/${path_rule.key}/*"]
        service = google_compute_backend_service.api[path_rule.value].id
      }
    }
  }

  lifecycle {
    precondition {
      condition = alltrue([
        for name in concat(values(local.api_route_groups), [local.api_default_function]) :
        contains(keys(local.load_balanced), name)
      ])
      error_message = "api_route_groups and api_default_function may only name functions of kind \"http\"."
    }
  }
}

# TLS 1.2 or later with modern ciphers only.
resource "google_compute_ssl_policy" "api" {
  count = var.api_domain == null ? 0 : 1

  name            = "coinfrs-api"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"

  depends_on = [google_project_service.compute]
}

# Provisioned only once api_domain resolves to the load balancer's address (README.md).
resource "google_compute_managed_ssl_certificate" "api" {
  count = var.api_domain == null ? 0 : 1

  # Named after the domain: another domain gets a certificate of its own, created before the old
  # one is removed from the proxy.
  name = "coinfrs-api-${substr(sha256(var.api_domain), 0, 8)}"

  managed {
    domains = [var.api_domain]
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [google_project_service.compute]
}

resource "google_compute_target_https_proxy" "api" {
  count = var.api_domain == null ? 0 : 1

  name             = "coinfrs-api"
  url_map          = google_compute_url_map.api[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.api[0].id]
  ssl_policy       = google_compute_ssl_policy.api[0].id
}

resource "google_compute_global_address" "api" {
  count = var.api_domain == null ? 0 : 1

  name = "coinfrs-api"

  depends_on = [google_project_service.compute]
}

resource "google_compute_global_forwarding_rule" "https" {
  count = var.api_domain == null ? 0 : 1

  name                  = "coinfrs-api-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  ip_address            = google_compute_global_address.api[0].id
  port_range            = "443"
  target                = google_compute_target_https_proxy.api[0].id
}

# Plain HTTP on the same address only redirects to HTTPS.
resource "google_compute_url_map" "http_redirect" {
  count = var.api_domain == null ? 0 : 1

  name = "coinfrs-api-http-redirect"

  default_url_redirect {
    https_redirect = true
    # 308: unlike 301, clients repeat a POST as a POST, with its body.
    redirect_response_code = "PERMANENT_REDIRECT"
    strip_query            = false
  }

  depends_on = [google_project_service.compute]
}

resource "google_compute_target_http_proxy" "http_redirect" {
  count = var.api_domain == null ? 0 : 1

  name    = "coinfrs-api-http-redirect"
  url_map = google_compute_url_map.http_redirect[0].id
}

resource "google_compute_global_forwarding_rule" "http" {
  count = var.api_domain == null ? 0 : 1

  name                  = "coinfrs-api-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_protocol           = "TCP"
  ip_address            = google_compute_global_address.api[0].id
  port_range            = "80"
  target                = google_compute_target_http_proxy.http_redirect[0].id
}
