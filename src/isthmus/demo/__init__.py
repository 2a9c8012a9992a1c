"""The demo (`python -m isthmus.demo`, what `make demo` runs): Isthmus end to end with
the unmodified `openstack` CLI.

    story.py     the story: start `isthmus up`, boot a server per site, attach a
                 volume, tell the chapters passed in, list everything, clean up
    fabric.py    a chapter: the ping matrix across sites and tenants (data plane)
    __main__.py  the entry point: assembles the story with its chapters, runs it

The story imports no chapter; a chapter imports the story. This module imports nothing.
"""
