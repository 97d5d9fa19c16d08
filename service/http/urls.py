"""URL templates of the API; the load test and the OpenAPI check use the same constants."""

API = "/api/v1"
LOGIN = f"{API}/auth/login"
EXAM = f"{API}/candidates/{{candidate_id}}/exam"
FORM = f"{API}/candidates/{{candidate_id}}/forms/{{batch}}"
LIVE = "/health/live"
READY = "/health/ready"
METRICS = "/metrics"
