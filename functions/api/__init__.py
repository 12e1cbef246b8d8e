"""HTTP functions, one per route group; the first path segment after /api/v1 names the group."""

# path segment after /api/v1 -> the Cloud Function target that serves it
ROUTE_GROUPS: dict[str, str] = {
    "auth": "auth",
    "users": "users",
    "portfolios": "portfolios",
    "entities": "entities",
    "datasources": "datasources",
    "jobs": "jobs",
    "transactions": "transactions",
    "positions": "positions",
    "reconciliation": "reconciliation",
    "health": "health",
    "openapi.json": "openapi",
}
