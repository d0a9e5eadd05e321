"""A small exception tree. The CLI maps each class to one line and an exit code.

Library code raises these with a message that says what was wrong and what to do;
anything else reaching the CLI is a bug and is reported as one.
"""


class EdgeNASError(Exception):
    """Base of every error a user can cause and fix."""

    exit_code = 1


class InputError(EdgeNASError):
    """Bad input: a malformed file, an unknown name, an out-of-range value."""

    exit_code = 2


class GenotypeError(InputError):
    """A genotype that does not fit its space (unknown op, bad edge, wrong length)."""


class SpaceError(InputError):
    """An unknown space or preset, or a configuration the space cannot build."""


class DeviceError(InputError):
    """An unknown or invalid device profile, or the wrong machine for it."""


class BackendUnavailable(EdgeNASError):
    """A backend whose runtime is not installed or has no hardware here."""

    exit_code = 3


class TableMissError(EdgeNASError):
    """A latency table lacks entries an answer needs; the message lists them."""

    exit_code = 4

    def __init__(self, message: str, missing_keys=()):
        super().__init__(message)
        self.missing_keys = list(missing_keys)


class MeasurementError(EdgeNASError):
    """A backend failed to build or run a model it should handle."""

    exit_code = 5


class TargetMissed(EdgeNASError):
    """A measured latency is over the target the user set."""

    exit_code = 6


class DeploymentCheckFailed(EdgeNASError):
    """An exported model that does not match PyTorch, or is not fit for the device's runtime."""

    exit_code = 7
