"""One module per `l402tui` subcommand group; imported lazily by l402tui.cli."""
