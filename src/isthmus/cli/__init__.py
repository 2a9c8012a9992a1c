"""The `isthmus` command, the top layer (cli > service > api > intent > engine > ...).

    main.py     the typer app and `main()`, the console script: up, worker, migrate,
                version, and the sub-commands below mounted on it
    client.py   how a command finds and talks to a running Isthmus (clouds.yaml,
                Keystone token, the admin REST API): the HTTP admin client
    sites.py    `isthmus site ...`, `isthmus resource ...`, `isthmus work`
    exec.py     `isthmus server exec SERVER -- CMD...`
    down.py     `isthmus down`: stop `up` by its pidfile, tear its data plane down
    tokens.py   `isthmus token-keys rotate|list`
    clouds.py   the clouds.yaml `isthmus up` writes for the openstack CLI

`python -m isthmus.cli ARGS` is `isthmus ARGS` (__main__.py). This module imports
nothing, so `isthmus.cli.client` and the others load without the whole app.
"""
