"""l402tui: autoresearch bounties paid over Lightning (L402)."""

__version__ = "0.1.0"
