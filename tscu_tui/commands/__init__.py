"""One module per `tscu` subcommand: `add_parser(parser)` and `run(args) -> int`.

Modules import heavy libraries inside `run`, never at module level.
"""
