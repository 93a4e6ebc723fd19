"""The command-line entry package: ``spira`` (:mod:`cli.main`), its sub-commands (one module each)
and the demo seeding. The top floor: it may import every package, nothing imports it.
"""
