"""The HTTP layer every API function shares: envelope, errors, routing, CORS, OpenAPI."""
