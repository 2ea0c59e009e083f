"""The results store: SQLAlchemy Core tables, engines for SQLite and PostgreSQL, and Alembic
migrations driven from code (``python -m gateway.store upgrade|current|check``)."""
