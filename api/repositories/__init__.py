"""Query helpers shared by services."""
