"""HTTP transport: routes, request parsing, response schemas. Thin over gateway.grading."""
