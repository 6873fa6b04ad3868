"""Plain helpers shared by the test folders: constants, data builders, reference models.

Tests import them as ``from tests.helpers.<module> import ...``; each ``conftest.py`` holds
only pytest fixtures and hooks (it may import from here), and no test imports a conftest.
"""
