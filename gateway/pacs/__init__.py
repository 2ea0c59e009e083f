"""PACS round trip: STOW-RS intake, DICOM SR results, a durable outbox and its delivery worker.

Patient and study attributes are read from the source dataset and copied into the SR inside
this package only; they never reach logs, metrics labels or error messages.
"""
