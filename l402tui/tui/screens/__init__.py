"""Modal screens: keys, create a bounty, fund, review a submission, confirm."""
