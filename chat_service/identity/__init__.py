"""Who is calling: named API keys, OpenID Connect bearer tokens, and the principal they name."""
