"""REST gateway: hospital PACS and clinicians in front, TensorFlow Serving (gRPC) behind."""
