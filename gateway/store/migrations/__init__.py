"""The store's Alembic environment (``env.py``) and revisions (``versions/``), run from code by
``gateway.store.migrate``: there is no alembic.ini to edit."""
