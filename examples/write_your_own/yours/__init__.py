"""A user's own package for raysim: a client algorithm, a server strategy, a policy and a model,
written only against raysim's public protocols (docs/architecture.md, "Write your own")."""
