"""What several datasets share: finding, downloading and verifying files, and their formats."""
