"""``python -m thingpress_core.cli``: the same as the ``thingpress-core`` command."""

from thingpress_core.cli import main

main()
