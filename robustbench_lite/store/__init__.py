"""The store: the results folder's layout (the one owner of every path), result records read back and checked against themselves, shards, certificates, diagnostics, and the model cache."""
