"""Your own model and data: loading, checking, folders per weights, and the row evaluate() returns."""
