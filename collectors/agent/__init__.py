"""`soc agent`: tails files and pushes their records to the HTTP intake, spooling while away."""
