"""`l402tui demo`: a sponsor, two agents and a coordinator on a simulated Lightning network."""
