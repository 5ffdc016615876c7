"""The Python-backend shim that runs an exported artifact inside the embedded Triton server."""
