"""Model backends: TF Serving over gRPC (production) and an in-process SavedModel (demo)."""
