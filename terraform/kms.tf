# Cloud KMS: the key that wraps the per-credential data keys of user API keys (DESIGN.md §6).

resource "google_kms_key_ring" "coinfrs" {
  name     = "coinfrs-${var.environment}"
  location = var.region

  depends_on = [google_project_service.api]
}

resource "google_kms_crypto_key" "credentials" {
  name            = "credentials"
  key_ring        = google_kms_key_ring.coinfrs.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" # 90 days; old versions stay enabled, so old wrapped keys still open

  lifecycle {
    # Destroying it makes every stored credential unreadable, with no way back.
    prevent_destroy = true
  }
}

# Only functions whose map entry asks for the role may wrap and unwrap data keys, and only with this key.
resource "google_kms_crypto_key_iam_member" "function" {
  for_each = local.kms_functions

  crypto_key_id = google_kms_crypto_key.credentials.id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = "serviceAccount:${google_service_account.function[each.key].email}"
}
