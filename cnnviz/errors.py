"""Errors a user can act on. The CLI prints them as one line; pages as st.error."""


class CnnvizError(Exception):
    """Base class: the message alone tells the user what is wrong."""


class UnknownNameError(CnnvizError, ValueError):
    """A model, dataset, layer or metric name that does not exist."""


class WeightsUnavailableError(CnnvizError):
    """The task needs trained weights and this model has none here."""


class ImageLoadError(CnnvizError, ValueError):
    """A file that cannot be read as a safe, sane image."""


class DatasetError(CnnvizError, ValueError):
    """A dataset folder or archive that cannot be used."""
