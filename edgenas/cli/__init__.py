"""The ``edgenas`` command. Importing it (the command's entry) makes the process settings the command
wants before any command module imports torch (``edgenas.process``)."""

from edgenas.process import prefer_passive_openmp

prefer_passive_openmp()
