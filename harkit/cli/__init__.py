"""Command-line interface: one thin module per verb, each calling the library."""
