"""The HTTP edge: Litestar route handlers, their schemas, error mapping and the API-key guard."""
