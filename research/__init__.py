"""BookForAI: a deep-learning study notebook as JAX/Flax research code.

Importing `research` has no side effects; import the chapter you need, e.g.
`from research import optim` or `from research.nn import attention`.
"""
