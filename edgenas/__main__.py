from edgenas.cli.main import entry

entry()
