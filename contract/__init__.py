"""The shared vocabulary of export, gateway and deploy: the grading scale, the model card and the
serving signatures. Standard library and pydantic only: no TensorFlow, no part of the project."""
