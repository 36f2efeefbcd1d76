"""What the tests share that is not a fixture: hostile and broken plugins, test doubles, small models and synthetic data (conftest.py holds the fixtures)."""
