"""JWT sessions, email OTP and Google sign-in (the identity issue)."""
